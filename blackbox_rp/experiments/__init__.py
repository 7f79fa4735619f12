"""Query-budgeted experiments: configs (TOML), run directories that resume, sweeps and reports.

* :mod:`.config` — the frozen config tree and its one checker;
* :mod:`.preflight` — what a budget buys, before the first query;
* :mod:`.run` — one run in its own directory (resolved config, environment, journal, results);
* :mod:`.sweep` — the product of runs through any ``concurrent.futures`` executor (local or Dask);
* :mod:`.report` — tables, CSV and plots over run directories.
"""
