"""virnuc_hpc: VirNucPro viral sequence identification at cluster scale."""

__version__ = "0.1.0"
