"""The modality-neutral core reproduces the image path of commit b04d822 exactly.

``tests/data/visual_quick_b04d822.json`` holds the visual benchmark's ``--quick`` cells (the two no-prompt
baselines, the two-view probe, two black-box fits, two white-box ceilings) as the code before the
redesign computed them (``python tests/visual_quick_cells.py`` at b04d822). The same seed must give the
same θ and the same accuracies now.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("mlxtend")

BEFORE = json.loads((Path(__file__).parent / "data" / "visual_quick_b04d822.json").read_text())


@pytest.mark.slow
def test_visual_quick_cells_match_the_code_before_the_redesign():
    from visual_quick_cells import cells

    now = cells()
    assert sorted(now) == sorted(BEFORE)
    for key, was in BEFORE.items():
        if not isinstance(was, dict):
            assert now[key] == was, key
            continue
        # θ: the same to float precision (EfficientNet's float sums may differ in the last bits across
        # thread counts; a changed step, selection or minibatch would move θ by orders of magnitude more)
        np.testing.assert_allclose(now[key]["theta"], was["theta"], rtol=0, atol=1e-6, err_msg=key)
        assert {k: v for k, v in now[key].items() if k != "theta"} == \
            {k: v for k, v in was.items() if k != "theta"}, key
