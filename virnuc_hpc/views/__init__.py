"""What a person sees of a run, from what is on disk: status (and --watch), the live bars of
`run` and `predict` (live), the report (report, figures)."""
