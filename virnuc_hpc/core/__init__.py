"""What every stage stands on, and nothing above it: errors, atomic writes (fsio), fault
points, the run directory's paths (rundir, the one owner of every path), the run's typed
options (config, shapes), typed table rows (tables) and the versions. Imports no torch."""
