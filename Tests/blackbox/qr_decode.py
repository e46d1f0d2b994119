"""Decodes the portal's inline QR code SVG with an independent decoder (zbar), to prove what a phone would read.

The SVG is the one `QRCode.svg(label:scale:)` emits: a `viewBox`, a white background `<rect>` and one black
`<path>` made of axis-aligned rectangles (`M x y h w v 1 h -w z`, absolute or relative commands). It is
rasterised with Pillow, enlarged, and handed to `zbarimg --raw -q` (QR only, binary output; Debian: zbar-tools).
"""
import os
import re
import subprocess
import tempfile

from PIL import Image, ImageDraw

PIXELS_PER_MODULE = 8
_SVG = re.compile(r'<svg\b[^>]*\bclass="(?:[^"]*\s)?qr(?:\s[^"]*)?"[^>]*>.*?</svg>', re.S)
_ATTR = r'\b{}="([^"]*)"'


def _attr(tag, name):
    m = re.search(_ATTR.format(re.escape(name)), tag)
    return m.group(1) if m else None


def _is_black(fill):
    return (fill or "#000").strip().lower() in ("#000", "#000000", "black", "rgb(0,0,0)")


def _path_rectangles(d):
    """The bounding box of every subpath of `d` (each is a rectangle in our SVG), as (x0, y0, x1, y1)."""
    tokens = re.findall(r"[MmHhVvLlZz]|-?\d*\.?\d+(?:[eE][-+]?\d+)?", d)
    boxes, points = [], []
    x = y = start_x = start_y = 0.0
    i, command = 0, None

    def close():
        if len(points) > 1:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            boxes.append((min(xs), min(ys), max(xs), max(ys)))
        points.clear()

    def number():
        nonlocal i
        value = float(tokens[i])
        i += 1
        return value

    while i < len(tokens):
        if tokens[i].isalpha():
            command = tokens[i]
            i += 1
            if command in "Zz":
                close()
                x, y = start_x, start_y
                continue
        if command is None:
            raise AssertionError(f"QR path data does not start with a command: {d[:40]!r}")
        if command in "Mm":
            close()
            nx, ny = number(), number()
            x, y = (x + nx, y + ny) if command == "m" else (nx, ny)
            start_x, start_y = x, y
            points.append((x, y))
            command = "l" if command == "m" else "L"  # extra pairs after a moveto are linetos
            continue
        elif command in "Ll":
            nx, ny = number(), number()
            x, y = (x + nx, y + ny) if command == "l" else (nx, ny)
        elif command == "h":
            x += number()
        elif command == "H":
            x = number()
        elif command == "v":
            y += number()
        elif command == "V":
            y = number()
        else:
            raise AssertionError(f"unsupported QR path command {command!r}")
        points.append((x, y))
    close()
    return boxes


def render_png(svg, path):
    """Rasterises the QR SVG (first `<svg class="qr">` in `svg`) to a PNG file at `path`."""
    m = _SVG.search(svg)
    if not m:
        raise AssertionError('no <svg class="qr"> element found in the page')
    element = m.group(0)
    open_tag = element[: element.index(">") + 1]
    view_box = _attr(open_tag, "viewBox")
    if not view_box:
        raise AssertionError(f"QR SVG has no viewBox: {open_tag[:200]}")
    min_x, min_y, width, height = (float(v) for v in view_box.replace(",", " ").split())
    s = PIXELS_PER_MODULE
    margin = 4  # extra quiet zone, in modules, in case the SVG's own is missing
    image = Image.new("L", (int((width + 2 * margin) * s), int((height + 2 * margin) * s)), 255)
    draw = ImageDraw.Draw(image)

    def fill_box(x0, y0, x1, y1):
        px0, py0 = round((x0 - min_x + margin) * s), round((y0 - min_y + margin) * s)
        px1, py1 = round((x1 - min_x + margin) * s), round((y1 - min_y + margin) * s)
        if px1 > px0 and py1 > py0:
            draw.rectangle([px0, py0, px1 - 1, py1 - 1], fill=0)

    for tag in re.findall(r"<rect\b[^>]*>", element):
        if _is_black(_attr(tag, "fill")):
            x, y = float(_attr(tag, "x") or 0), float(_attr(tag, "y") or 0)
            fill_box(x, y, x + float(_attr(tag, "width") or 0), y + float(_attr(tag, "height") or 0))
    for tag in re.findall(r"<path\b[^>]*>", element):
        if _is_black(_attr(tag, "fill")):
            for box in _path_rectangles(_attr(tag, "d") or ""):
                fill_box(*box)
    image.save(path)


def decode_svg(svg_text: str) -> str:
    """Renders the first `<svg class="qr">` in `svg_text` (an SVG or a whole HTML page) and returns what
    `zbarimg` decodes from it. Raises AssertionError if nothing decodes."""
    fd, png = tempfile.mkstemp(prefix="qr-", suffix=".png")
    os.close(fd)
    try:
        render_png(svg_text, png)
        # QR only: with every symbology on, zbar can also find a spurious 1-D barcode (e.g. DataBar) in the
        # modules. -Sbinary: the symbol's bytes exactly (no charset guessing, which turns short UTF-8 into
        # Shift JIS, and no trailing newline); the portal encodes UTF-8.
        command = ["zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable", "-Sbinary", png]
        result = subprocess.run(command, capture_output=True, timeout=60)
        if result.returncode != 0:  # 4: no symbol found
            raise AssertionError(
                f"zbarimg decoded no QR code from the SVG (exit {result.returncode}): "
                f"{result.stderr.decode(errors='replace').strip()}")
        try:
            return result.stdout.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AssertionError(f"the QR code's bytes are not UTF-8: {result.stdout[:80]!r}") from e
    finally:
        os.unlink(png)


if __name__ == "__main__":
    import sys

    sys.stdout.write(decode_svg(sys.stdin.read()))
