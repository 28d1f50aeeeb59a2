"""`facelens eval`: the metric code against hand-computed cases, the input parsers, and real runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facelens.cli import app
from facelens.errors import FacelensError
from facelens.evaluate import (
    accuracy,
    average_precision,
    bootstrap_ci,
    confusion_matrix,
    iou_matrix,
    match_detections,
    mean_absolute_error,
    precision_recall,
    read_manifest,
    read_wider,
    sample,
)

from conftest import DATA

UTK = DATA / "utkface-3k" / "labels.csv"
FER = DATA / "fer2013-public" / "labels.csv"
WIDER = DATA / "wider-val-300"
runner = CliRunner()


# --- metrics -------------------------------------------------------------------------------------


def test_average_precision_by_hand() -> None:
    # 3 faces; 5 detections, by score: TP FP TP FP TP.
    #   precision 1/1 1/2 2/3 2/4 3/5, recall 1/3 1/3 2/3 2/3 3/3
    #   envelope (max precision at any later point) at the three recall steps: 1, 2/3, 3/5
    #   AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5 = 15/45 + 10/45 + 9/45 = 34/45
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    hits = [True, False, True, False, True]
    assert average_precision(scores, hits, 3) == pytest.approx(34 / 45)
    # Order comes from the scores, not from the list.
    assert average_precision(scores[::-1], hits[::-1], 3) == pytest.approx(34 / 45)
    # The third face never found: its recall step is missing. AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
    assert average_precision(scores, [True, False, True, False, False], 3) == pytest.approx(5 / 9)
    # A false positive after the last hit costs nothing; one before the first halves the envelope.
    assert average_precision([0.9, 0.1], [True, False], 1) == pytest.approx(1.0)
    assert average_precision([0.9, 0.1], [False, True], 1) == pytest.approx(0.5)
    assert average_precision([], [], 4) == 0.0
    assert math.isnan(average_precision([0.5], [False], 0))
    with pytest.raises(ValueError):
        average_precision([0.9, 0.8], [True, True], 1)

    # Where interpolation matters: TP FP FP TP TP. Precision 1 1/2 1/3 2/4 3/5; at the second hit
    # the envelope is 3/5 (reached later, at higher recall), not its own 1/2:
    #   AP = 1/3 * (1 + 3/5 + 3/5) = 11/15 (without the envelope it would be 1/3 * (1 + 1/2 + 3/5) = 0.7)
    assert average_precision(scores, [True, False, False, True, True], 3) == pytest.approx(11 / 15)

    precision, recall, ordered = precision_recall(scores, hits, 3)
    assert precision == pytest.approx([1, 1 / 2, 2 / 3, 2 / 4, 3 / 5])
    assert recall == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    assert list(ordered) == scores


def test_iou() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [3, 3, 3, 8]])
    # Same box 1; half-shifted: 50 / 150; disjoint 0; zero-area 0.
    assert iou_matrix(a, b)[0] == pytest.approx([1.0, 1 / 3, 0.0, 0.0])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 4)


def test_matching_greedy_with_iou_ties() -> None:
    # Two faces overlapping each other; the detection box sits exactly between them, so its IoU
    # with both is the same: 90 / 110.
    faces = np.array([[0, 0, 10, 10], [2, 0, 12, 10]], float)
    between = [1, 0, 11, 10]
    assert iou_matrix(np.array([between]), faces)[0] == pytest.approx([90 / 110, 90 / 110])
    # Three identical detections; the most confident one is listed last.
    boxes = np.array([between, between, between], float)
    m = match_detections(boxes, [0.7, 0.8, 0.9], faces, [False, False])
    # 0.9 takes the first face on the tie, 0.8 the still free second, 0.7 is a duplicate: a false positive.
    assert m.matched.tolist() == [-1, 1, 0]
    assert m.true_positive.tolist() == [False, True, True]
    assert m.false_positive.tolist() == [True, False, False]
    assert m.n_positives == 2
    # Equal scores keep the given order.
    m = match_detections(boxes[:2], [0.5, 0.5], faces, [False, False])
    assert m.matched.tolist() == [0, 1]


def test_matching_ignore_regions() -> None:
    faces = np.array([[0, 0, 10, 10], [100, 100, 120, 120], [50, 50, 60, 60]], float)
    ignore = np.array([False, True, False])
    detections = np.array(
        [
            [0, 0, 10, 10],  # on the valid face: TP
            [101, 101, 120, 120],  # on the ignore region: neither
            [100, 100, 119, 119],  # again on the ignore region: regions absorb any number
            [200, 200, 210, 210],  # on nothing: FP
            [0, 1, 10, 10],  # duplicate of a taken face, not near the region: FP
            [51, 50, 61, 60],  # IoU 0.82 with the valid face: TP
        ],
        float,
    )
    m = match_detections(detections, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], faces, ignore)
    assert m.true_positive.tolist() == [True, False, False, False, False, True]
    assert m.ignored.tolist() == [False, True, True, False, False, False]
    assert m.false_positive.tolist() == [False, False, False, True, True, False]
    assert m.n_positives == 2
    # A free valid face wins over an ignore region that overlaps the detection more.
    faces = np.array([[0, 0, 10, 10], [0, 0, 10, 11]], float)
    m = match_detections(np.array([[0, 0, 10, 11]], float), [0.9], faces, [False, True])
    assert m.true_positive.tolist() == [True] and m.matched.tolist() == [0]


def test_matching_by_size_range() -> None:
    # Faces of height 20 (small), 40 (medium) and 100 (large), each found exactly, and two
    # detections on nothing: one 10 px high, one 80 px high.
    faces = np.array([[0, 0, 20, 20], [100, 0, 140, 40], [200, 0, 300, 100]], float)
    detections = np.vstack([faces, [[400, 0, 410, 10], [500, 0, 580, 80]]])
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    none = np.zeros(3, bool)
    everything = match_detections(detections, scores, faces, none)
    assert everything.true_positive.tolist() == [True, True, True, False, False]
    assert everything.false_positive.sum() == 2 and everything.n_positives == 3
    # 32 <= h < 64: only the 40 px face counts; the hits on the others and the two strays (their
    # heights 10 and 80 are outside the range) are ignored: AP 1, no false positive.
    medium = match_detections(detections, scores, faces, none, height_range=(32, 64))
    assert medium.n_positives == 1
    assert medium.true_positive.tolist() == [False, True, False, False, False]
    assert medium.ignored.tolist() == [True, False, True, True, True]
    counted = ~medium.ignored
    assert average_precision(np.array(scores)[counted], medium.true_positive[counted], medium.n_positives) == 1.0
    # h >= 64: the 80 px stray is in the range, so it is a false positive there.
    large = match_detections(detections, scores, faces, none, height_range=(64, math.inf))
    assert large.true_positive.tolist() == [False, False, True, False, False]
    assert large.false_positive.tolist() == [False, False, False, False, True]
    # An in-range detection on an out-of-range face is ignored (the face is an ignore region).
    wide = np.array([[0, 0, 20, 21]], float)  # 21 px high, IoU 20/21 with the 20 px face
    m = match_detections(wide, [0.9], faces[:1], [False], height_range=(21, 64))
    assert m.ignored.tolist() == [True] and m.n_positives == 0


def test_mae_accuracy_confusion() -> None:
    assert mean_absolute_error([10, 20, 30], [12, 17, 30]) == pytest.approx(5 / 3)
    # Row-wise on 2-D input, as the bootstrap calls it.
    assert mean_absolute_error([[1, 2], [3, 4]], [[1, 4], [0, 4]]) == pytest.approx([1.0, 1.5])
    assert accuracy(["a", "b", "b", "c"], ["a", "b", "c", "c"]) == 0.75
    assert accuracy([[1, 2], [1, 1]], [[1, 2], [2, 2]]).tolist() == [1.0, 0.0]
    matrix = confusion_matrix(["cat", "cat", "dog", "cow", "dog"], ["cat", "dog", "dog", "cat", "dog"], ["cat", "dog", "cow"])
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match="bird"):
        confusion_matrix(["cat"], ["bird"], ["cat", "dog"])


def test_bootstrap_ci() -> None:
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 2, 200)
    predicted = np.where(rng.random(200) < 0.8, truth, 1 - truth)
    value = accuracy(truth, predicted)
    low, high = bootstrap_ci(accuracy, truth, predicted, seed=3)
    assert low < value < high
    assert 0.05 < high - low < 0.15  # about 2 * 1.96 * sqrt(0.8 * 0.2 / 200) = 0.11
    assert bootstrap_ci(accuracy, truth, predicted, seed=3) == (low, high)
    assert bootstrap_ci(accuracy, truth, predicted, seed=4) != (low, high)
    # Ten times the data: about sqrt(10) times narrower.
    big_truth, big_predicted = np.tile(truth, 10), np.tile(predicted, 10)
    big_low, big_high = bootstrap_ci(accuracy, big_truth, big_predicted, seed=3)
    assert big_low < value < big_high
    assert (big_high - big_low) < 0.5 * (high - low)
    # MAE: the interval of the mean error holds it; a constant error has a zero-width interval.
    ages = rng.uniform(20, 60, 100)
    guesses = ages + rng.normal(0, 8, 100)
    mae = mean_absolute_error(ages, guesses)
    low, high = bootstrap_ci(mean_absolute_error, ages, guesses)
    assert low < mae < high
    assert bootstrap_ci(mean_absolute_error, ages, ages + 5) == pytest.approx((5.0, 5.0))
    assert all(math.isnan(v) for v in bootstrap_ci(accuracy, [], []))
    with pytest.raises(ValueError):
        bootstrap_ci(accuracy, [1, 2], [1])


def test_sample_is_reproducible() -> None:
    items = list(range(100))
    first = sample(items, 10, seed=1)
    assert first == sample(items, 10, seed=1) and first != sample(items, 10, seed=2)
    assert len(set(first)) == 10 and first == sorted(first)
    assert sample(items, None) == items and sample(items, 500) == items


# --- inputs --------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_manifest_good_and_bad_rows(tmp_path: Path, warnings_log) -> None:
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.full((64, 64, 3), 128, np.uint8))
    absolute = tmp_path / "elsewhere.png"
    cv2.imwrite(str(absolute), np.full((64, 64, 3), 90, np.uint8))
    manifest = _write(
        tmp_path / "labels.csv",
        "path,age,gender,emotion\n"
        "images/a.png,34,Female,HAPPY\n"  # good: labels are case-insensitive
        f"{absolute},,male,\n"  # good: absolute path, gender only
        "images/missing.png,30,male,sad\n"
        "images/a.png,abc,male,sad\n"
        "images/a.png,30,x,sad\n"
        "images/a.png,30,male,disgust\n"
        ",30,male,sad\n"
        "images/a.png,,,\n",
    )
    result = read_manifest(manifest)
    assert result.labels == ("age", "gender", "emotion")
    assert [(i.path, i.age, i.gender, i.age_bucket, i.emotion) for i in result.items] == [
        (tmp_path / "images" / "a.png", 34.0, "female", "30-44", "happy"),
        (absolute, None, "male", None, None),
    ]
    assert [(s.item, s.reason) for s in result.skipped] == [
        ("labels.csv row 4 (images/missing.png)", "missing file"),
        ("labels.csv row 5 (images/a.png)", "bad age"),
        ("labels.csv row 6 (images/a.png)", "bad gender"),
        ("labels.csv row 7 (images/a.png)", "bad emotion"),
        ("labels.csv row 8", "empty path"),
        ("labels.csv row 9 (images/a.png)", "no label"),
    ]
    warnings = [r.getMessage() for r in warnings_log.records]
    assert len(warnings) == 6
    assert "labels.csv row 5 (images/a.png): bad age ('abc'), skipped" in warnings
    assert any("'disgust'" in w for w in warnings)


def test_manifest_warns_twenty_then_counts(tmp_path: Path, warnings_log) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.full((8, 8, 3), 1, np.uint8))
    manifest = _write(tmp_path / "m.csv", "path,age\na.png,40\n" + "".join(f"gone{i}.png,40\n" for i in range(25)))
    result = read_manifest(manifest)
    assert len(result.items) == 1 and len(result.skipped) == 25
    warnings = [r.getMessage() for r in warnings_log.records]
    assert len(warnings) == 21
    assert warnings[-1] == "5 more skipped (25 in all; the first 20 shown)"


def test_bad_manifests(tmp_path: Path) -> None:
    with pytest.raises(FacelensError, match=r"nothere\.csv: no such"):
        read_manifest(tmp_path / "nothere.csv")
    with pytest.raises(FacelensError, match=r"nopath\.csv: no 'path' column \(columns: file, age\)"):
        read_manifest(_write(tmp_path / "nopath.csv", "file,age\na.png,3\n"))
    with pytest.raises(FacelensError, match=r"nolabel\.csv: no label column"):
        read_manifest(_write(tmp_path / "nolabel.csv", "path,name\na.png,Ann\n"))
    with pytest.raises(FacelensError, match=r"allbad\.csv: no usable row \(all 1 skipped\)"):
        read_manifest(_write(tmp_path / "allbad.csv", "path,age\nmissing.png,3\n"))
    with pytest.raises(FacelensError, match=r"empty\.csv: no 'path' column"):
        read_manifest(_write(tmp_path / "empty.csv", ""))


def test_wider_parser_on_the_shared_file() -> None:
    images = read_wider(WIDER)
    assert len(images) == 300
    assert sum(len(i.boxes) for i in images) == 3330
    assert sum(int((~i.invalid).sum()) for i in images) == 3303
    first = images[0]
    assert first.name == "0--Parade/0_Parade_Parade_0_12.jpg"
    assert first.path == WIDER / "images" / "0--Parade" / "0_Parade_Parade_0_12.jpg" and first.path.is_file()
    assert first.boxes[0].tolist() == [127, 201, 145, 221]  # x y w h = 127 201 18 20
    assert all(i.path.is_file() for i in images)
    # The folder and the file are the same input.
    assert [i.name for i in read_wider(WIDER / "wider_face_val_bbx_gt.txt")] == [i.name for i in images]


def test_wider_parser_edge_cases(tmp_path: Path) -> None:
    text = _write(
        tmp_path / "gt.txt",
        "a.jpg\n0\n0 0 0 0 0 0 0 0 0 0\nb.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n5 6 7 8 0 0 0 1 0 0\n",
    )
    a, b = read_wider(text)
    assert (a.name, len(a.boxes)) == ("a.jpg", 0)
    assert b.boxes.tolist() == [[1, 2, 4, 6], [5, 6, 12, 14]] and b.invalid.tolist() == [False, True]
    with pytest.raises(FacelensError, match=r"bad\.txt:3: expected 'x y w h"):
        read_wider(_write(tmp_path / "bad.txt", "a.jpg\n1\n1 2 three 4 0 0 0 0 0 0\n"))
    with pytest.raises(FacelensError, match=r"bad2\.txt:2: expected the number of faces of a\.jpg"):
        read_wider(_write(tmp_path / "bad2.txt", "a.jpg\nmany\n"))


# --- real runs through the command ---------------------------------------------------------------


def _eval(*args: str | Path) -> dict:
    result = runner.invoke(app, ["eval", *map(str, args)])
    assert result.exit_code == 0, result.output
    out = Path(args[args.index("--out") + 1])
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    assert results["command"] in report
    for picture in ("plots/" + p.name for p in (out / "plots").glob("*.png")):
        assert f"]({picture})" in report
    return results


def _inside(figure: dict) -> bool:
    low, high = figure["ci95"]
    return low <= figure["value"] <= high


def test_utkface_crop_and_full(tmp_path: Path) -> None:
    crop = _eval(UTK, "--limit", 60, "--seed", 1, "--out", tmp_path / "crop")
    assert crop["command"] == f"facelens eval {UTK} --mode crop --out {tmp_path / 'crop'} --limit 60 --seed 1"
    assert (crop["mode"], crop["items"], crop["evaluated"], crop["skipped"]["count"]) == ("crop", 60, 60, 0)
    figures = crop["figures"]
    # Children are among the 60, so under-18 MAE and the recall of `minor` are there; its precision only if some face read under 18.
    always = {"age_mae", "age_mae_18_75", "age_mae_under_18", "minor_recall", "age_bias", "age_bucket_accuracy", "gender_unknown", "gender_accuracy", "gender_accuracy_18_75"}
    assert always <= set(figures) <= always | {"minor_precision"}
    children = figures["age_mae"]["by_age_bucket"]["child"]["n"]
    assert children <= figures["age_mae_under_18"]["n"] == figures["minor_recall"]["n"] < 60
    assert figures["gender_accuracy_18_75"]["value"] > 0.85
    assert figures["gender_accuracy"]["value"] > 0.7
    assert 3 < figures["age_mae_18_75"]["value"] < 12 and 5 < figures["age_mae"]["value"] < 20
    assert figures["age_mae_18_75"]["n"] < figures["age_mae"]["n"] == 60
    assert all(_inside(f) for f in figures.values())
    groups = figures["age_mae"]["by_age_bucket"]
    assert sum(g["n"] for g in groups.values()) == 60 and set(groups) <= {"child", "teen", "20-29", "30-44", "45-64", "65+"}
    assert groups["child"]["value"] < 8  # the default family was trained on all ages (omz, made for adults: ~15)
    # Faces the network is unsure of are "unknown": counted on their own, not in the accuracy.
    unknown = figures["gender_unknown"]
    assert unknown["n"] == 60 and unknown["value"] < 0.2
    labelled = round(60 * (1 - unknown["value"]))
    assert figures["gender_accuracy"]["n"] == labelled == np.array(crop["confusion"]["gender"]["matrix"]).sum()
    assert {g: v["n"] for g, v in unknown["by_gender"].items()} == {"female": 30, "male": 30}
    assert sum(v["n"] for v in figures["gender_accuracy"]["by_gender"].values()) == labelled
    plots = tmp_path / "crop" / "plots"
    assert {p.name for p in plots.glob("*.png")} == {"age_error_by_bucket.png", "gender_accuracy_by_bucket.png"}
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in plots.glob("*.png"))

    full = _eval(UTK, "--limit", 60, "--seed", 1, "--mode", "full", "--out", tmp_path / "full")
    assert full["mode"] == "full" and "full mode" in full["note"]
    miss = full["figures"]["miss_rate"]
    assert miss["n"] == 60 and miss["value"] < 0.2
    assert full["found"] == round(60 * (1 - miss["value"]))
    assert full["figures"]["gender_unknown"]["n"] == full["found"]
    assert full["figures"]["gender_accuracy"]["n"] == round(full["found"] * (1 - full["figures"]["gender_unknown"]["value"]))
    assert full["figures"]["gender_accuracy_18_75"]["value"] > 0.85


def test_age_calibration_option_is_measured(tmp_path: Path) -> None:
    """--calibrate-age measures the ages users get with it: older and less biased for adults over 45."""
    omz = ("--age-gender-model", "omz")  # the table is for omz's age network
    plain = _eval(UTK, "--limit", 80, "--seed", 3, *omz, "--out", tmp_path / "plain")
    calibrated = _eval(UTK, "--limit", 80, "--seed", 3, "--calibrate-age", *omz, "--out", tmp_path / "calibrated")
    assert "--calibrate-age" in calibrated["command"] and calibrated["command"].endswith("--age-gender-model omz")
    refused = runner.invoke(app, ["eval", str(UTK), "--limit", "5", "--calibrate-age", "--out", str(tmp_path / "refused")])
    assert refused.exit_code == 1 and "only the omz age model has a calibration table, not cc0; add --age-gender-model omz" in refused.output
    assert not (tmp_path / "refused").exists()  # nothing written before the models opened
    assert calibrated["figures"]["age_bias"]["value"] > plain["figures"]["age_bias"]["value"] + 2
    old = lambda r: r["figures"]["age_mae"]["by_age_bucket"]["45-64"]["value"]  # noqa: E731
    assert old(calibrated) < old(plain)


def test_fer2013_emotion(tmp_path: Path) -> None:
    results = _eval(FER, "--limit", 60, "--out", tmp_path / "fer")
    assert set(results["figures"]) == {"emotion_accuracy"}
    figure = results["figures"]["emotion_accuracy"]
    assert figure["n"] == 60 and 0.4 < figure["value"] < 0.85 and _inside(figure)
    assert "by_age_bucket" not in figure and "by_gender" not in figure  # no such labels
    confusion = results["confusion"]["emotion"]
    matrix = np.array(confusion["matrix"])
    assert confusion["labels"] == ["neutral", "happy", "sad", "surprise", "anger"]
    assert matrix.shape == (5, 5) and matrix.sum() == 60
    assert np.trace(matrix) / 60 == pytest.approx(figure["value"])
    assert (tmp_path / "fer" / "plots" / "emotion_confusion.png").is_file()


def test_wider_detection(tmp_path: Path) -> None:
    results = _eval(WIDER, "--limit", 15, "--out", tmp_path / "wider")
    assert (results["kind"], results["images"], results["evaluated"], results["detector_confidence"]) == ("detection", 15, 15, 0.02)
    picked = sample(read_wider(WIDER), 15, 0)
    valid = sum(int((~i.invalid & (i.boxes[:, 3] > i.boxes[:, 1])).sum()) for i in picked)
    ranges = results["ranges"]
    assert list(ranges) == ["all", "<32", "32-64", ">=64"]
    assert ranges["all"]["faces"] == valid == sum(ranges[r]["faces"] for r in ("<32", "32-64", ">=64"))
    for name, figures in ranges.items():
        assert 0 < figures["ap"]["value"] <= 1, name
        assert _inside(figures["ap"])
        curve = figures["pr_curve"]
        assert 0 < len(curve["recall"]) <= 200
        assert curve["recall"] == sorted(curve["recall"]) and curve["score"] == sorted(curve["score"], reverse=True)
    # A 300x300 detector finds big faces and few small ones.
    assert ranges[">=64"]["ap"]["value"] > 0.7 and ranges["<32"]["ap"]["value"] < 0.2
    assert ranges[">=64"]["recall_at_threshold"]["value"] > 0.6
    assert 0 <= ranges["all"]["false_positives_per_image_at_threshold"]["value"] < 2
    assert (tmp_path / "wider" / "plots" / "precision_recall.png").is_file()
    assert "| >=64 |" in (tmp_path / "wider" / "report.md").read_text()


def test_bad_rows_and_bad_manifest_through_the_command(tmp_path: Path) -> None:
    rows = [line.split(",") for line in UTK.read_text().splitlines()[1:]]
    adults = [r for r in rows if 25 <= int(r[1]) <= 40][:3]
    (tmp_path / "broken.jpg").write_bytes(b"not a picture at all")
    manifest = _write(
        tmp_path / "mine.csv",
        "path,age,gender\n" + "".join(f"{UTK.parent / p},{a},{g}\n" for p, a, g in adults) + "broken.jpg,30,male\nbroken.jpg,old,male\n",
    )
    results = _eval(manifest, "--out", tmp_path / "out")
    assert results["evaluated"] == 3 and results["figures"]["gender_unknown"]["n"] == 3
    assert results["skipped"]["count"] == 2
    assert results["skipped"]["reasons"] == {"bad age": 1, "unreadable image": 1}

    result = runner.invoke(app, ["eval", str(tmp_path / "nothere.csv"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "nothere.csv: no such file or folder" in result.output
    _write(tmp_path / "nolabels.csv", "path\na.jpg\n")
    result = runner.invoke(app, ["eval", str(tmp_path / "nolabels.csv"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "nolabels.csv: no label column" in result.output
    result = runner.invoke(app, ["eval", str(manifest), "--mode", "sideways"])
    assert result.exit_code == 2
