"""The ``blackbox-rp`` command (also ``python -m blackbox_rp``).

Subcommands live one per module in :mod:`blackbox_rp.commands` and are found
automatically: a module there that defines ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int`` is a subcommand named after the module (underscores
become dashes). ``add_arguments`` must stay import-light; heavy imports belong
in ``run`` so that ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import sys
import traceback
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
Errors are one line `blackbox-rp COMMAND: error: ...`; add -v to see the traceback.
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


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and adds ``(default: X)`` to every option whose help does not
    already say its default, so ``--help`` never hides what an omitted option means."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.option_strings and "default" not in text and action.default not in (None, False, [], ())
                and action.default is not argparse.SUPPRESS and text is not argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


#: what the library raises for a bad input or a failed request; each says what to do, so one line is enough
USER_ERRORS = (ValueError, TypeError, LookupError, OSError, ImportError, RuntimeError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blackbox-rp", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"blackbox-rp {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="show the traceback of an error and info logs (-vv: debug logs too)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _discover().items():
        p = sub.add_parser(name, help=mod.HELP, description=(mod.__doc__ or mod.HELP),
                           formatter_class=HelpFormatter)
        mod.add_arguments(p)
        # also after the command (`blackbox-rp query ... -v`), where people type it
        p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                       help="show the traceback of an error and info logs (-vv: debug logs too)")
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
    except BrokenPipeError:  # `blackbox-rp ... | head`: the reader left; not an error worth a line
        with contextlib.suppress(Exception):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit stays quiet
        return 0
    except Exception as e:  # the one boundary: every error becomes one line, -v shows the traceback
        if args.verbose >= 1:
            traceback.print_exc()
        print(f"blackbox-rp {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2 if isinstance(e, USER_ERRORS) else 1


def _one_line(e: BaseException) -> str:
    """The error as one line: the library's own message, or the type and a request to report it."""
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.filename}: {e.strerror}"
    if not isinstance(e, USER_ERRORS):
        return (f"internal error ({type(e).__name__}: {text}); run again with -v for the traceback and "
                f"report it")
    return text

if __name__ == "__main__":
    sys.exit(main())
