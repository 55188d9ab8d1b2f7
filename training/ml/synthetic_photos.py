"""From a coin's height map to a photo: the relief shaded as aged metal, then photographed on a table (rotation,
scale, tilt, shadow, uneven light, blur, noise). training.ml.synthetic calls these; the negatives reuse the tables.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from training.ml.synthetic_faces import CoinSpec
from training.ml.synthetic_primitives import gaussian_blur, lowfreq_noise, polar_grid

# --------------------------------------------------------------------------
# shading: height map -> aged metal
# --------------------------------------------------------------------------


def shade_relief(h: np.ndarray, s: CoinSpec, rng: np.random.Generator) -> Image.Image:
    D = h.shape[0]
    unit = D / 200.0
    wear = s.wear
    hb = gaussian_blur(h, unit * (0.7 + 1.1 * wear))
    gy, gx = np.gradient(hb)
    la = rng.uniform(-2.6, -1.6)  # light from upper left-ish
    lx, ly = math.cos(la), math.sin(la)
    relief = 1.0 - 0.45 * wear
    shade = (gx * lx + gy * ly) * (6.5 * unit) * relief
    r, phi = polar_grid(D)
    R = D / 2.0 - 0.5
    rn = r / R
    base = s.metal.astype(np.float32)
    # lustre: cartwheel brightness variation on fresh coins, plus a dish shading
    lustre = 1.0 + (0.10 * (1.0 - wear)) * np.cos(2 * (phi - rng.uniform(0, math.pi))) - 0.06 * rn**2
    albedo = (0.80 + 0.22 * hb) * lustre
    diffuse = np.clip(1.0 + shade, 0.3, 1.9)
    spec = np.clip(shade, 0, None) ** 2 * (0.9 * (1.0 - 0.7 * wear))
    # grainy metal surface
    grain = rng.normal(0, 0.025 + 0.04 * wear, (D, D)).astype(np.float32)
    grain = gaussian_blur(grain, 0.6 * unit)
    lum = albedo * diffuse + grain
    rgb = lum[..., None] * base[None, None, :] + spec[..., None] * (0.6 + 0.4 * base[None, None, :])
    # toning / darkening with age, dirt in recesses near the relief
    # (toning keeps the alloy's hue: it darkens and slightly greys the metal)
    tone = 0.45 * (0.8 * base + 0.2 * base.mean())
    dark = 0.45 * wear
    rgb = rgb * (1.0 - dark) + tone[None, None, :] * dark * lum[..., None]
    dirt = np.clip(gaussian_blur(h, 3.0 * unit) - hb, 0, None) * (1.3 * wear)
    rgb *= (1.0 - np.clip(dirt, 0, 0.6))[..., None]
    # patina spots
    n_spots = int(rng.poisson(0.5 + 7 * wear**1.5))
    if n_spots:
        spot = Image.new("L", (D, D), 0)
        sd = ImageDraw.Draw(spot)
        for _ in range(n_spots):
            x, y = rng.uniform(0.15, 0.85, 2) * D
            rx, ry = rng.uniform(0.01, 0.055, 2) * D
            sd.ellipse((x - rx, y - ry, x + rx, y + ry), fill=int(rng.uniform(90, 220)))
        sm = gaussian_blur(np.asarray(spot, dtype=np.float32) / 255.0, 1.5 * unit)
        pc = np.array([0.22, 0.36, 0.28] if s.copper > 0.5 else [0.16, 0.15, 0.14], dtype=np.float32)
        sm = sm[..., None] * (0.4 + 0.5 * wear)
        rgb = rgb * (1 - sm) + pc[None, None, :].astype(np.float32) * sm
    # scratches
    n_scr = int(rng.poisson(0.5 + 12 * wear))
    if n_scr:
        scr = Image.new("L", (D, D), 0)
        sd = ImageDraw.Draw(scr)
        for _ in range(n_scr):
            x0, y0 = rng.uniform(0.1, 0.9, 2) * D
            ang = rng.uniform(0, math.pi)
            ln = rng.uniform(0.05, 0.45) * D
            x1, y1 = x0 + ln * math.cos(ang), y0 + ln * math.sin(ang)
            sd.line([(x0, y0), (x1, y1)], fill=int(rng.uniform(60, 200)), width=1)
        sm = np.asarray(scr, dtype=np.float32)[..., None] / 255.0
        rgb = rgb + sm * 0.22 * (0.5 + 0.5 * base[None, None, :])
    # bevelled edge
    edge = np.clip((rn - 0.965) / 0.035, 0, 1)
    rgb *= (1.0 - 0.35 * edge)[..., None]
    alpha = np.clip(R - r + 0.5, 0.0, 1.0)
    out = np.empty((D, D, 4), dtype=np.uint8)
    out[..., :3] = np.clip(rgb * 255.0, 0, 255).astype(np.uint8)
    out[..., 3] = (alpha * 255).astype(np.uint8)
    return Image.fromarray(out, "RGBA")


# --------------------------------------------------------------------------
# photography: background, placement, lighting, camera
# --------------------------------------------------------------------------


def _bg_colour(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Random surface colour, mostly muted (tables, cloth, paper are rarely vivid)."""
    col = rng.uniform(lo, hi, 3)
    g = col.mean()
    sat = rng.uniform(0.0, 0.35) if rng.random() < 0.8 else rng.uniform(0.35, 0.8)
    return (g + (col - g) * sat).astype(np.float32)


def table_background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = int(rng.integers(4))
    shape = (size, size)
    unit = size / 256.0
    yy, xx, _ = _grid(size)
    yy, xx = yy * size, xx * size
    if kind == 0:  # plain surface (paper, table, felt)
        col = _bg_colour(rng, 0.12, 0.95)
        var = (lowfreq_noise(rng, shape, 4) - 0.5) * 0.12
        img = col[None, None, :] * (1.0 + var[..., None])
    elif kind == 1:  # cloth: weave plus fuzz
        col = _bg_colour(rng, 0.1, 0.85)
        f = rng.uniform(0.9, 2.2) / unit
        ang = rng.uniform(0, math.pi)
        u = xx * math.cos(ang) + yy * math.sin(ang)
        v = -xx * math.sin(ang) + yy * math.cos(ang)
        weave = 0.5 + 0.25 * np.sin(u * f) * np.sin(v * f) + 0.25 * np.sin(u * f * 0.5)
        fuzz = gaussian_blur(rng.standard_normal(shape, dtype=np.float32), 0.8 * unit) * 0.06
        var = (lowfreq_noise(rng, shape, 5) - 0.5) * 0.25
        img = col[None, None, :] * (0.85 + 0.15 * weave + fuzz + var)[..., None]
    elif kind == 2:  # wood: stripes bent by low-frequency noise
        light = np.array([0.72, 0.52, 0.32])
        light = ((light.mean() + (light - light.mean()) * rng.uniform(0.2, 0.8)) * rng.uniform(0.6, 1.25)).astype(
            np.float32
        )
        darkc = light * rng.uniform(0.45, 0.7)
        ang = rng.uniform(0, math.pi)
        u = xx * math.cos(ang) + yy * math.sin(ang)
        v = -xx * math.sin(ang) + yy * math.cos(ang)
        bend = lowfreq_noise(rng, shape, 3) * (rng.uniform(15, 45) * unit)
        freq = rng.uniform(0.05, 0.16) / unit
        st = 0.5 + 0.5 * np.sin((v + bend) * freq + 0.3 * np.sin(u * (0.02 / unit)))
        st = st ** rng.uniform(1.5, 4.0)
        fine = gaussian_blur(rng.standard_normal(shape, dtype=np.float32), 0.7 * unit) * 0.04
        img = light[None, None, :] * (1 - st[..., None]) + darkc[None, None, :] * st[..., None]
        img = img * (1.0 + fine[..., None])
        if rng.random() < 0.5:  # plank seams
            pitch = rng.uniform(70, 140) * unit
            seam = np.abs(((v + rng.uniform(0, pitch)) % pitch) - pitch / 2) > pitch / 2 - 1.2 * unit
            img[seam] *= 0.55
    else:  # two-tone backdrop, sometimes speckled (granite, cork)
        c1 = _bg_colour(rng, 0.1, 0.95)
        c2 = np.clip(c1 * rng.uniform(0.6, 1.3) + rng.normal(0, 0.04, 3), 0, 1)
        g = lowfreq_noise(rng, shape, 2)[..., None]
        img = c1[None, None, :] * (1 - g) + c2[None, None, :] * g
        if rng.random() < 0.5:
            sp = rng.random(shape) < rng.uniform(0.01, 0.08)
            img[sp] *= rng.uniform(0.4, 1.6)
            img = np.stack([gaussian_blur(img[..., k].astype(np.float32), 0.6 * unit) for k in range(3)], axis=-1)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _tiles(rng: np.random.Generator, size: int) -> np.ndarray:
    """The northern mint's photos lie on tiles: a saturated two-colour checker with grout lines."""
    c1, c2 = rng.uniform(0.2, 0.9, 3), rng.uniform(0.2, 0.9, 3)
    pitch = rng.uniform(0.08, 0.2) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    checker = ((xx // pitch + yy // pitch) % 2)[..., None]
    img = c1 * checker + c2 * (1 - checker)
    grout = ((xx % pitch) < 1.5) | ((yy % pitch) < 1.5)
    img[grout] = 0.85
    return img.astype(np.float32)


def photograph_coin(
    face: Image.Image,
    rng: np.random.Generator,
    size: int,
    diam: int,
    face_xy: tuple[float, float] | None = None,
    style: str = "classic",
) -> tuple[Image.Image, tuple[float, float] | None]:
    """Place the rendered face on a background and simulate a phone camera.

    ``face_xy`` (a point of the face, e.g. the date's centre) comes back as the same point in the photo's pixels.
    """
    if face_xy is not None:
        face_xy = (
            (face_xy[0] * diam / face.size[0], face_xy[1] * diam / face.size[1])
            if face.size[0] > diam * 1.25
            else face_xy
        )
    unit = size / 256.0
    if face.size[0] > diam * 1.25:
        face = face.resize((diam, diam), Image.BILINEAR)
    # one affine map: scale to diam, slight camera tilt (disc -> mild ellipse), rotation
    scale = diam / face.size[0]
    squash = 1.0 - min(abs(rng.normal(0, 0.04)), 0.15)
    axis = rng.uniform(0, math.pi)
    theta = math.radians(rng.uniform(-25, 25))
    ca, sa = math.cos(axis), math.sin(axis)
    tilt_inv = np.array([[ca, -sa], [sa, ca]]) @ np.diag([1.0, 1.0 / squash]) @ np.array([[ca, sa], [-sa, ca]])
    ct, st = math.cos(theta), math.sin(theta)
    m = tilt_inv @ np.array([[ct, st], [-st, ct]]) / scale  # output offset -> input offset
    cin = face.size[0] / 2.0
    cout = diam / 2.0
    off = np.array([cin, cin]) - m @ np.array([cout, cout])
    coin = face.transform(
        (diam, diam),
        Image.AFFINE,
        (m[0, 0], m[0, 1], off[0], m[1, 0], m[1, 1], off[1]),
        resample=Image.BICUBIC,
    )
    img = _tiles(rng, size) if style == "northern" else table_background(rng, size)
    slack = max(size - diam, 0)
    ox = int(round(slack / 2 + rng.uniform(-0.4, 0.4) * slack))
    oy = int(round(slack / 2 + rng.uniform(-0.4, 0.4) * slack))
    photo_xy = None
    if face_xy is not None:  # invert the affine map: input = m @ (output - cout) + off'
        out_xy = np.linalg.solve(m, np.array(face_xy, dtype=np.float64) - off)
        photo_xy = (float(out_xy[0] + ox), float(out_xy[1] + oy))
    # soft shadow, cast away from the light
    alpha = coin.getchannel("A")
    sdx, sdy = (int(v) for v in rng.uniform(1, 6, 2) * unit)
    q = 4  # the shadow is soft: compute it at quarter resolution
    small = max(1, size // q)
    sh = Image.new("L", (small, small), 0)
    sh.paste(alpha.resize((max(1, diam // q), max(1, diam // q)), Image.BILINEAR), ((ox + sdx) // q, (oy + sdy) // q))
    sh = sh.filter(ImageFilter.GaussianBlur(rng.uniform(2, 6) * unit / q)).resize((size, size), Image.BILINEAR)
    shadow = np.asarray(sh, dtype=np.float32) * (rng.uniform(0.25, 0.55) / 255.0)
    img *= 1.0 - shadow[..., None]
    # coin
    cp = np.asarray(coin, dtype=np.float32) / 255.0
    ca4 = cp[..., 3:4]
    win = img[oy : oy + diam, ox : ox + diam]
    win *= 1.0 - ca4
    win += cp[..., :3] * ca4
    # uneven light: linear gradient, vignette, white balance, exposure, sensor noise
    yy, xx, rr = _grid(size)
    ga = rng.uniform(0, 2 * math.pi)
    light = (
        (1.0 + rng.uniform(0.05, 0.25) * (xx * math.cos(ga) + yy * math.sin(ga)))
        * (1.0 - rng.uniform(0.0, 0.25) * rr)
        * rng.uniform(0.92, 1.08)
    )
    wb = (1.0 + rng.normal(0, 0.02, 3)).astype(np.float32)
    img *= light[..., None]
    img *= wb
    img += (rng.random(img.shape, dtype=np.float32) - 0.5) * (3.46 * rng.uniform(0.004, 0.02))  # sensor noise
    out = Image.fromarray(np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    blur = rng.uniform(0.0, 0.9) * unit
    if blur > 0.2:
        out = out.filter(ImageFilter.GaussianBlur(blur))
    return out, photo_xy


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel coordinates in [-0.5, 0.5) and 2 * squared radius, for photo-level effects."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    rr = 2.0 * (xx**2 + yy**2)
    for a in (yy, xx, rr):
        a.setflags(write=False)
    return yy, xx, rr


