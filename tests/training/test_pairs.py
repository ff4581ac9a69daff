"""Reading before/after pairs from folders and zips, and the errors that name the file."""

import zipfile

import pytest
from PIL import Image

from engine.core.errors import InputError
from engine.training.pairs import read_pairs


def make_folder(root, names=("a", "b", "c"), after_size=(40, 30)):
    for side in ("before", "after"):
        (root / side).mkdir(parents=True)
    for name in names:
        Image.new("RGB", (40, 30), (10, 20, 30)).save(root / "before" / f"{name}.png")
        Image.new("RGB", after_size, (200, 20, 30)).save(root / "after" / f"{name}.jpg")
    return root


def test_folder_pairs_match_by_name_without_extension(tmp_path):
    pairs = read_pairs(make_folder(tmp_path / "pairs"))
    assert [pair.name for pair in pairs] == ["a", "b", "c"]
    assert pairs[0].before.getpixel((0, 0)) == (10, 20, 30)
    assert pairs[0].after.mode == "RGB"


def test_zip_with_a_top_folder_works(tmp_path):
    folder = make_folder(tmp_path / "set")
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in folder.rglob("*.*"):
            handle.write(path, f"set/{path.relative_to(folder)}")
    assert len(read_pairs(archive)) == 3


def test_zip_slip_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("../outside.txt", "x")
    with pytest.raises(InputError, match="unsafe path"):
        read_pairs(archive)


@pytest.mark.parametrize("case, message", [
    ("different aspect", "different aspect ratios"),
    ("one pair", "at least 2"),
    ("missing after", "no after/ match"),
    ("not an image", "b.png"),
    ("no folders", "before"),
    ("not a zip", "not a .zip"),
])
def test_bad_pairs_name_the_problem(tmp_path, case, message):
    if case == "different aspect":
        location = make_folder(tmp_path / "pairs", after_size=(40, 40))
    elif case == "one pair":
        location = make_folder(tmp_path / "pairs", names=("a",))
    elif case == "missing after":
        location = make_folder(tmp_path / "pairs")
        (location / "after" / "c.jpg").unlink()
    elif case == "not an image":
        location = make_folder(tmp_path / "pairs")
        (location / "before" / "b.png").write_bytes(b"not a png")
    elif case == "no folders":
        location = tmp_path / "empty"
        location.mkdir()
    else:
        location = tmp_path / "pairs.txt"
        location.write_text("x")
    with pytest.raises(InputError, match=message):
        read_pairs(location)


def test_a_zip_with_a_symbolic_link_or_too_many_entries_is_refused_naming_it(tmp_path):
    linked = tmp_path / "linked.zip"
    with zipfile.ZipFile(linked, "w") as handle:
        info = zipfile.ZipInfo("before/a.png")
        info.create_system, info.external_attr = 3, 0o120777 << 16
        handle.writestr(info, "/etc/passwd")
    with pytest.raises(InputError, match=r"linked\.zip holds the symbolic link 'before/a\.png'; zip a folder"):
        read_pairs(linked)
    crowded = tmp_path / "crowded.zip"
    with zipfile.ZipFile(crowded, "w") as handle:
        for index in range(2_001):
            handle.writestr(f"before/{index}.txt", "")
    with pytest.raises(InputError, match=r"crowded\.zip holds 2,001 entries, more than the 2,000 a pairs zip may; give fewer pairs"):
        read_pairs(crowded)


def test_problems_inside_a_zip_name_the_zip_not_the_temporary_folder(tmp_path):
    folder = make_folder(tmp_path / "set")
    (folder / "after" / "b.jpg").unlink()
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in folder.rglob("*.*"):
            handle.write(path, str(path.relative_to(folder)))
    with pytest.raises(InputError) as caught:
        read_pairs(archive)
    message = str(caught.value)
    assert message.startswith(f"unmatched pairs in {archive}: b.png has no after/ match; give each before/ photo")
    assert "atelier-pairs-" not in message
