"""A synthetic test photo: a drawn face the OpenCV Haar cascade detects, on a textured background."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt


def face_photo(width: int = 420, height: int = 280) -> npt.NDArray[np.uint8]:
    """A BGR image: a textured background (so unchanged pixels are checkable) and one face at the left."""
    rng = np.random.default_rng(4)
    image = rng.integers(40, 200, (height, width, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (0, 0), 1.5)
    face = np.full((240, 240, 3), 60, np.uint8)

    def at(x: float, y: float) -> tuple[int, int]:
        return int(120 + x), int(120 + y)

    cv2.ellipse(face, at(0, 0), (70, 92), 0, 0, 360, (170, 190, 220), -1)  # skin
    cv2.ellipse(face, at(0, -95), (75, 30), 0, 180, 360, (30, 30, 40), -1)  # hair
    for dx in (-30, 30):
        cv2.ellipse(face, at(dx, -38), (20, 5), 0, 0, 360, (40, 50, 70), -1)  # brow
        cv2.ellipse(face, at(dx, -18), (14, 8), 0, 0, 360, (250, 250, 250), -1)  # eye
        cv2.circle(face, at(dx, -18), 6, (20, 20, 20), -1)  # pupil
    cv2.line(face, at(0, -10), at(-6, 25), (120, 140, 170), 3)  # nose
    cv2.ellipse(face, at(0, 25), (12, 5), 0, 0, 360, (110, 130, 160), -1)
    cv2.ellipse(face, at(0, 50), (28, 8), 0, 0, 360, (60, 60, 140), -1)  # mouth
    image[20:260, 20:260] = cv2.GaussianBlur(face, (0, 0), 2)
    return image


def detect_faces(image: npt.NDArray[np.uint8]) -> list[list[int]]:
    """The boxes the same cascade as the example finds, to check the photo is a valid test input."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    found = cascade.detectMultiScale(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), 1.1, 5, minSize=(30, 30))
    return [[int(v) for v in box] for box in found]
