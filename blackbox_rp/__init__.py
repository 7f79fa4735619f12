"""blackbox_rp: reprogram models that can only be queried.

    y_target = O_ω ∘ f ∘ I_θ (x_target)

``f`` is reached only through an :class:`~blackbox_rp.oracle.Oracle` whose every
query is counted in a :class:`Ledger` and journaled; ``I_θ`` lives in
:mod:`blackbox_rp.transforms`, ``O_ω`` in :mod:`blackbox_rp.mapping`, and θ is
learned by the zeroth-order optimizers of :mod:`blackbox_rp.optim`.
"""

from .cache import Journal, JournalError
from .exposure import ExposureError, LabelOnly, Logits, Probs, Response, Rounded, TopK, parse_exposure
from .ledger import Budget, BudgetExhausted, Ledger
from .oracle import InputError, InputSpec, Oracle, OracleError

__version__ = "0.1.0"

__all__ = [
    "Budget", "BudgetExhausted", "Ledger", "Journal", "JournalError", "Oracle", "OracleError",
    "InputSpec", "InputError", "Response", "ExposureError", "Probs", "Logits", "TopK", "LabelOnly",
    "Rounded", "parse_exposure", "__version__",
]
