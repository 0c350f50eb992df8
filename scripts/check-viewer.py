#!/usr/bin/env python3
"""Checks a screenshot of Weft's trace viewer for drawn slices.

Usage: scripts/check-viewer.py SCREENSHOT.png

Reads the PNG with the standard library only (8-bit RGB or RGBA, not
interlaced: what Chromium writes), looks at the timeline (right of the
thread labels, left of the side panel, below the header) and fails unless
slices were drawn there: several thread rows hold slice pixels, some are the
saturated colours of polls and reactor turns, some the grey of parks.
"""
import struct
import sys
import zlib


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    pos, idat, width, height, kind = 8, b"", 0, 0, 0
    while pos < len(data):
        length, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if tag == b"IHDR":
            width, height, depth, kind, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or kind not in (2, 6) or interlace:
                sys.exit(f"{path}: unsupported PNG (depth {depth}, colour type {kind}, interlace {interlace})")
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 3 if kind == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, bpp, rows


def main():
    width, height, bpp, rows = read_png(sys.argv[1])
    # The viewer's layout: 190 px of thread labels, a 340 px side panel, a
    # header of about 46 px and the time axis below it.
    x0, x1, y0 = 200, width - 350, 80
    saturated = grey = 0
    rows_with_slices = set()
    for y in range(y0, height):
        line = rows[y]
        for x in range(x0, x1):
            r, g, b = line[x * bpp], line[x * bpp + 1], line[x * bpp + 2]
            spread = max(r, g, b) - min(r, g, b)
            if spread > 60:
                saturated += 1
                rows_with_slices.add(y // 20)
            elif 150 < r < 225 and spread < 45 and (r, g, b) != (241, 242, 245):
                grey += 1
                rows_with_slices.add(y // 20)
    print(f"viewer screenshot {width}x{height}: {saturated} slice pixels in colour, {grey} in grey, "
          f"{len(rows_with_slices)} bands of 20 px with slices")
    if saturated < 200 or grey < 200 or len(rows_with_slices) < 4:
        sys.exit("the viewer drew too few slices: is the trace loaded and the timeline painted?")


main()
