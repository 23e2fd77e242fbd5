"""Check that the faceres graph is read right: its gender and age heads on well-known LFW people.

The TF.js graph has two heads besides the 1024-D descriptor the evaluator uses: ``gender_pred``
(sigmoid, > 0.5 = male) and ``age_pred`` (softmax over 100 one-year bins). A mistake in the
reader (layouts, padding, input scale) shows as heads that no longer tell men from women or give
implausible ages. The faces are the first four images of twelve LFW people (six men, six women)
from a `fam align` folder, cropped by the evaluator's own template; the same is repeated with the
input scaled to [-1, 1] instead of 0..255, which should collapse.

Usage: ``nice -n 10 python benchmarks/check_faceres_heads.py --aligned-dir ~/.cache/fam/aligned/lfw128``
Last line: ``gender_acc=<fraction> age_men=<mean years> age_women=<mean years>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

MEN = ("George_W_Bush", "Colin_Powell", "Tony_Blair", "Vladimir_Putin", "Gerhard_Schroeder", "Lleyton_Hewitt")
WOMEN = (
    "Serena_Williams",
    "Jennifer_Lopez",
    "Britney_Spears",
    "Laura_Bush",
    "Jennifer_Capriati",
    "Gloria_Macapagal_Arroyo",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--aligned-dir", type=Path, required=True, help="a `fam align` output folder of LFW")
    parser.add_argument("--per-person", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from fam.faces.chip import FACERES_224, crop_to_template
    from fam.faces.faceres import AGE, EMBEDDING, GENDER, load_faceres_graph

    images, male, names = [], [], []
    for person in MEN + WOMEN:
        files = sorted((args.aligned_dir / "images" / person).glob("*.png"))[: args.per_person]
        if not files:
            raise SystemExit(f"no aligned images of {person} in {args.aligned_dir}/images")
        for file in files:
            images.append(np.asarray(Image.open(file).convert("RGB")))
            male.append(person in MEN)
            names.append(person)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    crops = crop_to_template(x, FACERES_224)
    is_male = torch.tensor(male)
    ids = np.array(names)
    same = torch.from_numpy(ids[:, None] == ids[None, :]) & ~torch.eye(len(ids), dtype=torch.bool)
    graph = load_faceres_graph((EMBEDDING, GENDER, AGE))
    result = ""
    for label, pixels in (("0..255 (the model's)", (crops + 1.0) * 127.5), ("[-1, 1] (wrong)", crops)):
        with torch.inference_mode():
            out = graph(pixels)
        p_male = out[GENDER][:, 0]
        age = out[AGE] @ torch.arange(100, dtype=torch.float32)
        unit = torch.nn.functional.normalize(out[EMBEDDING], dim=1)
        cos = unit @ unit.T
        different = ~same & ~torch.eye(len(ids), dtype=torch.bool)
        gender_acc = float(((p_male > 0.5) == is_male).float().mean())
        print(
            f"input {label}: gender right {gender_acc:.3f}; mean age men {age[is_male].mean():.1f}, "
            f"women {age[~is_male].mean():.1f}; cosine same person {cos[same].mean():.3f}, "
            f"different {cos[different].mean():.3f}"
        )
        if not result:
            for person in MEN + WOMEN:
                rows = torch.from_numpy(ids == person)
                print(f"    {person:24s} P(male) {p_male[rows].mean():.2f}  age {age[rows].mean():.0f}")
            result = (
                f"gender_acc={gender_acc:.3f} age_men={age[is_male].mean():.1f} "
                f"age_women={age[~is_male].mean():.1f}"
            )
    print(result)


if __name__ == "__main__":
    main()
