"""A round's 3D review: the bought frames in rank order as a Rerun recording.

:mod:`.scene` gathers what to show from the round's export (points, pre-labels,
the most uncertain objects with their MC spread, cameras, ego pose, score and
explanation); :mod:`.recording` writes it headless as an ``.rrd`` file and reads
it back with Rerun's own reader. ``ceal review --round R [--open]`` and the
``round_review`` asset call them (:mod:`.round_review`).
"""
