"""The report's figures: PNGs for any input, empty ones included, sized by what they show."""

from __future__ import annotations

import struct

import numpy as np

from virnuc_hpc.views import figures


def size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def test_prediction_grows_with_its_tracks_and_draws_overlapping_chunks():
    track = figures.Track("s (1,200 bp)", 1200, [(0, 500, 0.9, True), (399, 899, 0.7, False),
                                                 (798, 1200, 0.55, True)])
    skipped = figures.Track("t", 40, [], note="skipped (all_frames_have_stop): no kept frame")
    one, three = figures.prediction([track]), figures.prediction([track, skipped, track], "note")
    assert size(one)[0] == size(three)[0] == figures.WIDTH_IN * figures.DPI
    assert size(three)[1] > 2 * size(one)[1]


def test_empty_inputs_still_give_images():
    for png in (figures.prediction([]), figures.kept_frames({}),
                figures.score_histograms(np.linspace(0, 1, 51),
                                         {"virus": np.zeros(50), "others": np.zeros(50)}),
                figures.timeline([], [], [], [], "seconds"),
                figures.throughput(np.array([]), np.array([]), "seconds")):
        assert min(size(png)) > 50


def test_kept_frames_bins_wide_ranges():
    assert size(figures.kept_frames({0: 5, 1: 10, 3000: 1}))[1] > 50
