"""Where the YOLO export puts an image, so that Ultralytics finds its labels (its img2label_paths:
the last /images/ of the path becomes /labels/)."""

from __future__ import annotations

from graphlake_client.yolo_export import label_safe


def ultralytics_label(image: str) -> str:
    return "/labels/".join(image.rsplit("/images/", 1)).rsplit(".", 1)[0] + ".txt"


def test_an_image_folder_named_images_does_not_misplace_its_labels() -> None:
    for name, placed in [("a.png", "a.png"), ("sub/c.png", "sub/c.png"), ("images/x.png", "images_/x.png"),
                         ("a/images/b/images.png", "a/images_/b/images.png")]:
        assert label_safe(name) == placed
        image = f"/out/images/train/{placed}"
        expected = f"/out/labels/train/{placed.rsplit('.', 1)[0]}.txt"
        assert ultralytics_label(image) == expected
