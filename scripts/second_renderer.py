"""A second, independent way of drawing photos of handwritten digits: for
measuring only, never for training or for fitting a threshold.

`mnist::synth` (Rust) draws the photos the project trains its photo model
on and tunes its preprocessing with. A rule fitted to one generator moves
its failures to where that generator does not look (issue 37: chalkboards
lit by a lamp were read as "0" at 0.99 once the even-ground threshold was
tightened on synth's own boards). This renderer is written apart from it,
in another language, with other models of the same conditions:

- paper: tinted, with a low-frequency texture (a blurred random field) and
  fibre grain, not synth's flat tint plus noise;
- light: a lamp's hot spot (a radial falloff that can burn out the paper),
  a hand's hard-edged shadow (a blurred polygon), a vignette, underexposure
  with sensor noise; not synth's linear falloff plus soft shadow;
- ink: MNIST digits upsampled bicubically and pushed through a contrast
  curve, laid by multiplying the paper (ballpoint, felt-tip, graphite);
- chalk: bright grainy strokes over a board with erased-chalk smudges, lit
  by a lamp spot or a strong gradient, so the board's own brightness spans
  far more than synth's boards;
- the frame: a crop that cuts 10-25 % of the digit off one side;
- the camera: rotation and a perspective warp, blur, JPEG at varied quality.

It also draws photos with nothing to read (blank paper, a black frame, a
plain gradient, empty ruled paper, paper texture): the service must say
there is no digit rather than name one.

Usage:
    python scripts/second_renderer.py OUT_DIR [--per-condition N] [--seed S]
        [--first-index I] [--mnist DIR] [--conditions a,b,...]

Writes OUT_DIR/<condition>/<n>-<label>.jpg (label `none` for nothing to
read) and OUT_DIR/labels.csv with columns file,label,condition. The digits
are MNIST test images from --first-index on (default 7000; the project's
photo tests use 0-5999), so no training digit is drawn.
"""

import argparse
import csv
import io
import math
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_idx import find, idx  # noqa: E402

DIGIT_CONDITIONS = [
    "clean",
    "ruled",
    "squared",
    "pencil",
    "lamp",
    "hand-shadow",
    "low-light",
    "marker",
    "tilted",
    "cut",
    "chalk-lamp",
    "chalk-gradient",
]
NOTHING_CONDITIONS = ["blank-paper", "black", "gradient", "empty-ruled", "paper-texture"]


def smooth_field(rng, h, w, scale):
    """A random field varying over about `scale` pixels, in [-1, 1]."""
    small = rng.standard_normal((max(2, h // scale + 2), max(2, w // scale + 2))).astype(np.float32)
    img = Image.fromarray(((small - small.min()) / (np.ptp(small) + 1e-6) * 255).astype(np.uint8))
    img = img.resize((w, h), Image.BICUBIC)
    f = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return f


def paper(rng, h, w, tone=None):
    """RGB paper in [0, 1]: a tint, a low-frequency texture and grain."""
    if tone is None:
        tone = rng.choice(
            [
                (0.95, 0.95, 0.93),  # office paper
                (0.93, 0.90, 0.80),  # recycled
                (0.98, 0.95, 0.75),  # legal pad
                (0.88, 0.90, 0.93),  # cool-white under daylight
            ]
        )
    base = np.ones((h, w, 3), np.float32) * np.array(tone, np.float32)
    texture = smooth_field(rng, h, w, rng.integers(20, 60)) * rng.uniform(0.01, 0.04)
    grain = rng.standard_normal((h, w)).astype(np.float32) * rng.uniform(0.005, 0.02)
    return np.clip(base + (texture + grain)[..., None], 0, 1)


def digit_coverage(digit28, size, thicken=0):
    """The 28x28 digit upsampled to `size` px square, as ink coverage in [0, 1]."""
    img = Image.fromarray(digit28).resize((size, size), Image.BICUBIC)
    if thicken:
        img = img.filter(ImageFilter.MaxFilter(thicken * 2 + 1))
    cov = np.asarray(img, dtype=np.float32) / 255.0
    # A contrast curve: pen ink saturates where MNIST's edges are soft.
    return np.clip((cov - 0.15) / 0.55, 0, 1) ** 0.8


def place(canvas_hw, cov, rng, cut=False):
    """Coverage of the whole canvas with `cov` placed at random; with `cut`,
    10-25 % of the digit's ink box hangs over one edge."""
    h, w = canvas_hw
    ch, cw = cov.shape
    ys, xs = np.nonzero(cov > 0.3)
    if len(ys) == 0:
        ys, xs = np.array([ch // 2]), np.array([cw // 2])
    by0, by1, bx0, bx1 = ys.min(), ys.max(), xs.min(), xs.max()
    if cut:
        side = rng.integers(0, 4)
        share = rng.uniform(0.10, 0.25)
        oy = rng.integers(0, max(1, h - ch))
        ox = rng.integers(0, max(1, w - cw))
        if side == 0:  # left
            ox = -bx0 - int(share * (bx1 - bx0))
        elif side == 1:  # right
            ox = w - 1 - bx1 + int(share * (bx1 - bx0))
        elif side == 2:  # top
            oy = -by0 - int(share * (by1 - by0))
        else:
            oy = h - 1 - by1 + int(share * (by1 - by0))
    else:
        oy = rng.integers(0, max(1, h - ch))
        ox = rng.integers(0, max(1, w - cw))
    out = np.zeros((h, w), np.float32)
    y0, x0 = max(0, oy), max(0, ox)
    y1, x1 = min(h, oy + ch), min(w, ox + cw)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = cov[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return out


def ink_on(page, cov, colour, strength=1.0):
    """Lays ink by multiplying the paper (ink absorbs light)."""
    a = (cov * strength)[..., None]
    return page * (1 - a) + page * np.array(colour, np.float32) * a


def lamp(rng, h, w, strength):
    """A lamp's hot spot: brightness multiplier, up to `strength` brighter
    at the spot, falling to `1 - strength` far away."""
    cy, cx = rng.uniform(-0.2, 1.2) * h, rng.uniform(-0.2, 1.2) * w
    radius = rng.uniform(0.3, 0.8) * max(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / radius
    return (1 - strength) + 2 * strength * np.exp(-(d**2))


def hand_shadow(rng, h, w):
    """A hard-edged shadow (a hand or a phone) over part of the page."""
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    corner = rng.integers(0, 4)
    cx, cy = [(0, 0), (w, 0), (0, h), (w, h)][corner]
    reach = rng.uniform(0.5, 0.9)
    pts = [(cx, cy)]
    for angle in np.linspace(0, math.pi / 2, 5):
        sx = 1 if cx == 0 else -1
        sy = 1 if cy == 0 else -1
        r = reach * max(w, h) * rng.uniform(0.7, 1.1)
        pts.append((cx + sx * r * math.cos(angle), cy + sy * r * math.sin(angle)))
    draw.polygon(pts, fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(rng.uniform(2, 8)))
    depth = rng.uniform(0.35, 0.6)
    return 1 - depth * np.asarray(mask, np.float32) / 255.0


def rules(page, rng, grid):
    h, w, _ = page.shape
    step = int(rng.uniform(0.08, 0.16) * min(h, w))
    colour = np.array(rng.choice([(0.55, 0.70, 0.90), (0.65, 0.65, 0.70)]), np.float32)
    offset = rng.integers(0, step)
    for y in range(offset, h, step):
        page[y : y + 1 + int(rng.integers(0, 2))] *= colour
    if grid:
        for x in range(offset, w, step):
            page[:, x : x + 1] *= colour
    elif rng.random() < 0.6:
        x = int(rng.uniform(0.05, 0.15) * w)
        page[:, x : x + 2] *= np.array((0.95, 0.55, 0.55), np.float32)
    return page


def board(rng, h, w):
    """A chalkboard: dark green, slate or black, with erased-chalk smudges."""
    tone = rng.choice([(0.12, 0.22, 0.16), (0.18, 0.19, 0.21), (0.08, 0.08, 0.09)])
    page = np.ones((h, w, 3), np.float32) * np.array(tone, np.float32)
    smudges = np.zeros((h, w), np.float32)
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(2, 6)):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        length, width = rng.uniform(0.3, 0.9) * w, rng.uniform(0.05, 0.2) * h
        draw.ellipse((x - length / 2, y - width / 2, x + length / 2, y + width / 2), fill=int(rng.integers(40, 110)))
    smudges = np.asarray(img.filter(ImageFilter.GaussianBlur(rng.uniform(6, 14))), np.float32) / 255.0
    page = page + smudges[..., None] * 0.35
    grain = rng.standard_normal((h, w)).astype(np.float32) * 0.02
    return np.clip(page + grain[..., None], 0, 1)


def chalk(rng, cov):
    """Chalk covers the board unevenly: grain knocks out bits of each stroke."""
    grain = rng.uniform(0.35, 1.0, cov.shape).astype(np.float32)
    grain = np.asarray(Image.fromarray((grain * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.7)), np.float32) / 255
    return np.clip(cov * grain * 1.2, 0, 1)


def camera(rng, img, tilt=False, blur=(0.0, 0.8), quality=(50, 92)):
    """Rotation and perspective (with `tilt`), blur, JPEG."""
    if tilt:
        img = img.rotate(rng.uniform(10, 25) * rng.choice([-1, 1]), resample=Image.BICUBIC, expand=False,
                         fillcolor=tuple(int(v) for v in np.asarray(img)[2, 2]))
        w, h = img.size
        d = rng.uniform(0.03, 0.10)
        coeffs = find_coeffs(
            [(0, 0), (w, 0), (w, h), (0, h)],
            [(d * w * rng.random(), d * h * rng.random()), (w - d * w * rng.random(), 0),
             (w, h - d * h * rng.random()), (d * w * rng.random(), h)],
        )
        img = img.transform((w, h), Image.PERSPECTIVE, coeffs, Image.BICUBIC,
                            fillcolor=tuple(int(v) for v in np.asarray(img)[2, 2]))
    sigma = rng.uniform(*blur)
    if sigma > 0.1:
        img = img.filter(ImageFilter.GaussianBlur(sigma))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=int(rng.integers(*quality)))
    return out.getvalue()


def find_coeffs(source, target):
    """The eight perspective coefficients PIL wants, mapping target to source."""
    matrix = []
    for (x, y), (X, Y) in zip(target, source):
        matrix.append([x, y, 1, 0, 0, 0, -X * x, -X * y])
        matrix.append([0, 0, 0, x, y, 1, -Y * x, -Y * y])
    a = np.array(matrix, np.float64)
    b = np.array(source, np.float64).reshape(8)
    return np.linalg.solve(a, b).tolist()


def to_image(page):
    return Image.fromarray((np.clip(page, 0, 1) * 255).astype(np.uint8))


def render(rng, condition, digit28):
    """One photo (JPEG bytes) of `digit28` (None: nothing to read) under `condition`."""
    w = int(rng.integers(240, 480))
    h = int(w * rng.uniform(1.0, 1.33))
    if rng.random() < 0.5:
        h, w = w, h
    short = min(h, w)
    ink_colour = rng.choice([(0.10, 0.10, 0.12), (0.15, 0.20, 0.55), (0.05, 0.05, 0.25)])
    size = int(short * rng.uniform(0.45, 0.8))

    if condition in ("chalk-lamp", "chalk-gradient"):
        page = board(rng, h, w)
        cov = place((h, w), chalk(rng, digit_coverage(digit28, size, thicken=int(rng.integers(0, 2)))), rng)
        chalk_tone = rng.uniform(0.75, 0.95)
        page = page * (1 - cov[..., None]) + chalk_tone * cov[..., None]
        if condition == "chalk-lamp":
            light = lamp(rng, h, w, rng.uniform(0.35, 0.6))
        else:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            angle = rng.uniform(0, 2 * math.pi)
            t = (xx * math.cos(angle) + yy * math.sin(angle))
            t = (t - t.min()) / (np.ptp(t) + 1e-6)
            light = 0.45 + rng.uniform(0.9, 1.6) * t
        page = np.clip(page * light[..., None] + page.mean() * (light[..., None] - 1) * 0.6, 0, 1)
        return camera(rng, to_image(page), blur=(0.3, 1.2))

    if condition in ("black",):
        page = np.zeros((h, w, 3), np.float32) + rng.uniform(0.0, 0.08)
        page += rng.standard_normal((h, w, 1)).astype(np.float32) * 0.01
        return camera(rng, to_image(page))
    if condition == "gradient":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(angle) + yy * math.sin(angle)
        t = (t - t.min()) / (np.ptp(t) + 1e-6)
        lo, hi = rng.uniform(0.0, 0.3), rng.uniform(0.6, 1.0)
        page = np.repeat((lo + (hi - lo) * t)[..., None], 3, axis=2)
        return camera(rng, to_image(page))

    page = paper(rng, h, w)
    if condition in ("ruled", "empty-ruled"):
        page = rules(page, rng, grid=False)
    if condition == "squared":
        page = rules(page, rng, grid=True)

    if digit28 is not None:
        thicken = int(rng.integers(3, 6)) if condition == "marker" else 0
        cov = digit_coverage(digit28, size, thicken=thicken)
        cov = place((h, w), cov, rng, cut=(condition == "cut"))
        if condition == "pencil":
            grain = rng.uniform(0.5, 1.0, cov.shape).astype(np.float32)
            page = ink_on(page, cov * grain, (0.35, 0.35, 0.38), rng.uniform(0.4, 0.7))
        elif condition == "marker":
            page = ink_on(page, cov, rng.choice([(0.05, 0.05, 0.05), (0.10, 0.15, 0.6), (0.7, 0.1, 0.1)]))
        else:
            page = ink_on(page, cov, ink_colour, rng.uniform(0.8, 1.0))

    if condition == "lamp":
        page = page * lamp(rng, h, w, rng.uniform(0.25, 0.45))[..., None]
    elif condition == "hand-shadow":
        page = page * hand_shadow(rng, h, w)[..., None]
    elif condition == "low-light":
        page = page * rng.uniform(0.35, 0.55) + rng.standard_normal((h, w, 1)).astype(np.float32) * 0.03
    elif condition == "paper-texture":
        page = page * (1 + smooth_field(rng, h, w, 12)[..., None] * 0.06)
    # A vignette, as phone lenses have.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((yy / h - 0.5) ** 2 + (xx / w - 0.5) ** 2) * 2
    page = page * (1 - rng.uniform(0.0, 0.25) * r2)[..., None]
    blur = (0.5, 1.6) if condition == "low-light" else (0.0, 0.8)
    return camera(rng, to_image(page), tilt=(condition == "tilted"), blur=blur)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--per-condition", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--first-index", type=int, default=7000)
    parser.add_argument("--mnist", default=os.environ.get("MNIST_DIR", "../shared/data/mnist"))
    parser.add_argument("--conditions", default=",".join(DIGIT_CONDITIONS + NOTHING_CONDITIONS))
    args = parser.parse_args()

    images = idx(find(args.mnist, "t10k-images-idx3-ubyte"))
    labels = idx(find(args.mnist, "t10k-labels-idx1-ubyte"))
    conditions = [c for c in args.conditions.split(",") if c]
    unknown = [c for c in conditions if c not in DIGIT_CONDITIONS + NOTHING_CONDITIONS]
    if unknown:
        raise SystemExit(f"unknown conditions: {unknown}")
    os.makedirs(args.out, exist_ok=True)
    rows = []
    index = args.first_index
    for ci, condition in enumerate(conditions):
        rng = np.random.default_rng([args.seed, ci])
        os.makedirs(os.path.join(args.out, condition), exist_ok=True)
        for n in range(args.per_condition):
            if condition in NOTHING_CONDITIONS:
                digit, label = None, "none"
            else:
                digit, label = images[index % len(images)], str(int(labels[index % len(labels)]))
                index += 1
            data = render(rng, condition, digit)
            name = os.path.join(condition, f"{n:04d}-{label}.jpg")
            with open(os.path.join(args.out, name), "wb") as f:
                f.write(data)
            rows.append((name, label, condition))
    with open(os.path.join(args.out, "labels.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "label", "condition"])
        writer.writerows(rows)
    print(f"{len(rows)} photos in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
