"""Age and gender variants on a labelled set in `full` mode (detector boxes, as users run it):
the families as shipped, the CC0 networks without alignment, the OMZ network on aligned chips,
and CC0 ages with the OMZ and CC0 male probabilities averaged. Prints the headline figures with
95% intervals, each variant built from `facelens.attribute_models` descriptions.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/age_gender_families.py ../shared/data/utkface-3k/labels.csv
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from facelens import Analyzer, evaluate
from facelens.align import DLIB_CHIP
from facelens.attribute_models import cc0, omz
from facelens.attributes import AttributeEstimator, Loaded, load_network
from facelens.models import ModelStore

SHOWN = ("age_mae", "age_mae_18_75", "age_mae_under_18", "minor_precision", "minor_recall", "gender_accuracy", "gender_accuracy_18_75")


def _omz_gender_only(out, n):
    return {"male": out["prob"].reshape(n, 2)[:, 1]}


VARIANTS = {
    "cc0 (aligned)": (cc0.AGE, cc0.GENDER),
    "cc0 on square crops": (replace(cc0.AGE, align=None), replace(cc0.GENDER, align=None)),
    "omz (square crops)": (omz.AGE_GENDER,),
    "omz on dlib-template chips": (replace(omz.AGE_GENDER, align=DLIB_CHIP),),
    "cc0 age, gender mean of cc0 and omz": (cc0.AGE, cc0.GENDER, replace(omz.AGE_GENDER, decode=_omz_gender_only)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    store = ModelStore()
    analyzer = Analyzer(age_gender_model="cc0", emotion=False, head_pose=False, store=store)  # its landmark network serves every variant
    landmarks = analyzer.attributes.landmarks
    items = evaluate.sample(evaluate.read_manifest(args.manifest).items, args.limit, 0)
    for name, models in VARIANTS.items():
        analyzer.attributes = AttributeEstimator([Loaded(m, load_network(m, store, single_thread=True)) for m in models], landmarks=landmarks)
        figures = evaluate.evaluate_attributes(analyzer, items, "full")["figures"]
        cells = []
        for key in SHOWN:
            f = figures.get(key)
            if f:
                cells.append(f"{key} {f['value']:.3f} [{f['ci95'][0]:.3f}-{f['ci95'][1]:.3f}]")
        print(f"{name}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
