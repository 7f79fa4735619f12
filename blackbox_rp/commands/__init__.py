"""One module per ``blackbox-rp`` subcommand; see :mod:`blackbox_rp.cli` for the contract."""
