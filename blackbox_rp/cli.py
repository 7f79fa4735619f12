"""The ``blackbox-rp`` command (also ``python -m blackbox_rp``).

Subcommands live one per module in :mod:`blackbox_rp.commands` and are found
automatically: a module there that defines ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int`` is a subcommand named after the module (underscores
become dashes). ``add_arguments`` must stay import-light; heavy imports belong
in ``run`` so that ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from typing import Sequence

from . import __version__, commands

DESCRIPTION = """\
Reprogram models that can only be queried: learn an input transformation and an
output label mapping by spending queries, with every query counted, budgeted
and journaled.

  y_target = O_w . f . I_theta (x_target)     f: the frozen model, behind an oracle
"""

EPILOG = """\
examples:
  blackbox-rp models                          what is bundled
  blackbox-rp query --model efficientnet-lite0 --sample-images --exposure top5
  blackbox-rp demo                            ImageNet model reprogrammed to MNIST, black-box

Run `blackbox-rp COMMAND --help` for the options of one command.
"""


def _discover() -> dict[str, object]:
    found = {}
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if all(hasattr(mod, a) for a in ("HELP", "add_arguments", "run")):
            found[info.name.replace("_", "-")] = mod
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blackbox-rp", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"blackbox-rp {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _discover().items():
        p = sub.add_parser(name, help=mod.HELP, description=(mod.__doc__ or mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; answered queries are in the journal, run the same command again to resume",
              file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as e:
        # errors from this library say what to do; a traceback would only hide that
        if args.verbose >= 2:
            raise
        print(f"blackbox-rp {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
