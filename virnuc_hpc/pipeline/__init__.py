"""The commands as library functions, for the CLI, a workflow or a notebook: a run's request
planned or resumed (planning), `predict`, `submit`, `run` and `resubmit` (run), reduce then
report (results), and the install check (selfcheck)."""
