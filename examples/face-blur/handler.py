"""Face blur (seed 004): a JPEG or PNG in, the same image out with every detected face blurred.

Faces are found with the Haar cascade that ships inside opencv-python-headless 4.x (the 5.x wheels
no longer carry `cv2.data.haarcascades`). Detection time is reported as `ml` in Server-Timing,
beside the handler's total; the boxes come back in the `X-Faces` header as JSON.
"""

from __future__ import annotations

import cv2
import numpy as np
import orjson

from inferlab.errors import InvalidInput
from inferlab.functions import Handler, Request, Response

CASCADE = "haarcascade_frontalface_default.xml"
PNG_MAGIC = b"\x89PNG"


class FaceBlur(Handler):
    def setup(self) -> None:
        path = cv2.data.haarcascades + CASCADE
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise RuntimeError(f"cannot load {path}; install opencv-python-headless 4.x, whose wheels ship it")

    def handle(self, request: Request) -> Response:
        image = cv2.imdecode(np.frombuffer(request.body, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise InvalidInput("the body is not an image OpenCV can decode; send JPEG or PNG bytes")
        with self.timed("ml"):
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            faces = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
        boxes = [[int(v) for v in box] for box in faces]
        for x, y, w, h in boxes:
            # sigma of a quarter of the face: eyes and mouth smear out, the face is no longer detectable
            image[y:y + h, x:x + w] = cv2.GaussianBlur(image[y:y + h, x:x + w], (0, 0), max(w, h) / 4)
        is_png = request.body.startswith(PNG_MAGIC)
        ok, encoded = cv2.imencode(".png" if is_png else ".jpg", image)
        if not ok:
            raise RuntimeError("OpenCV could not encode the blurred image")
        return Response(encoded.tobytes(), "image/png" if is_png else "image/jpeg",
                        headers={"X-Faces": orjson.dumps(boxes).decode()})
