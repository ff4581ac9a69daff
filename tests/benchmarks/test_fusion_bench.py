"""The fusion benchmark's measures: the subject and style embeddings rank same-subject and
same-style pairs above different ones (the check the benchmark reports), and subjects' photos."""

from __future__ import annotations

from PIL import Image

from benchmarks.dataset import benchmark_pairs
from benchmarks.fusion_bench import content_embedding, markdown, subject_photos, validate_embeddings
from engine.fusion import OfflineStyleEmbedding


def test_subject_photos_are_five_different_crops_of_one_photo(tmp_path) -> None:
    paths = subject_photos("skimage-chelsea", tmp_path)
    images = [Image.open(path).convert("RGB") for path in paths]
    assert len(images) == 5 and all(image.size == (256, 256) for image in images)
    assert len({image.tobytes() for image in images}) == 5


def test_the_embeddings_rank_same_subject_and_same_style_pairs_first(tmp_path) -> None:
    subjects = {photo: [Image.open(path) for path in subject_photos(photo, tmp_path / photo)]
                for photo in ("skimage-chelsea", "skimage-coffee", "skimage-astronaut")}
    styles = {style: [after for _, after, _ in benchmark_pairs(style, "train")[:4]] for style in ("ink sketch", "vintage", "oil paint")}
    check = validate_embeddings(subjects, styles, OfflineStyleEmbedding())
    assert check["subject_pairs_ranked_right"] > 0.8, check
    assert check["style_pairs_ranked_right"] > 0.8, check
    # The content embedding is a unit vector whose cosine is 1 with itself and invariant to brightness.
    image = subjects["skimage-coffee"][0]
    brighter = Image.eval(image, lambda value: min(255, value + 20))
    assert abs(float(content_embedding(image) @ content_embedding(image)) - 1) < 1e-9
    assert float(content_embedding(image) @ content_embedding(brighter)) > 0.99


def test_the_table_shows_timing_only_and_score_only_rows() -> None:
    report = {"methods": {"est": {"subject_similarity": 0.5, "style_similarity": 0.25, "mean_of_both": 0.375,
                                  "seconds_per_image": 0.2, "ratio_to_single_lora": 1.01},
                          "klora per call (its code)": {"seconds_per_image": 0.5, "ratio_to_single_lora": 2.5},
                          "merge": {"subject_similarity": 0.4, "style_similarity": 0.3, "mean_of_both": 0.35}}}
    rows = markdown(report).splitlines()
    assert rows[2] == "| est | 0.5000 | 0.2500 | 0.3750 | 0.200 | 1.010 |"
    assert rows[3] == "| klora per call (its code) | - | - | - | 0.500 | 2.500 |"
    assert rows[4] == "| merge | 0.4000 | 0.3000 | 0.3500 | - | - |"
