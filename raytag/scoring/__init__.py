"""Track scoring, the one owner: how raytag turns a track into tag probabilities and a status.

Every entry point scores a track the same way: evaluation (in the driver's process or on a Ray
Data actor pool), ``raytag predict`` (in process or on Ray), taggrams and embeddings, and the
MLflow model (audio files, or waveforms with their sample rate). The chain:

    probe the header → status ``too short``? → chunk rows covering the track (at most
    ``max_chunks``) → decode each chunk (crop at the source's rate, then resample) → model →
    sigmoid → per-track average and peak → status ``silent`` / ``unreadable`` / ``ok``

Modules:

- :mod:`raytag.scoring.options`: :class:`~raytag.scoring.options.ScoringOptions`, THE defaults
  (max chunks, batch size, ``ray_above``). Imports neither numpy nor torch (the job config uses it).
- :mod:`raytag.scoring.status`: the statuses and their rules (silence, too short).
- :mod:`raytag.scoring.tracks`: header probe, the chunk plan, per-track averaging
  (:class:`~raytag.scoring.tracks.TrackTally`) and results. No torch of its own.
- :mod:`raytag.scoring.chunks`: the per-chunk step (decoded chunks → probabilities and peaks),
  what the Ray actors call too.
- :mod:`raytag.scoring.scorer`: the in-process scorer (:func:`~raytag.scoring.scorer.score_sources`).
- :mod:`raytag.scoring.segments`: segment scoring (taggrams, embeddings).

An in-memory waveform is just another source (:class:`raytag.audio.waveform.Waveform`): it is
probed, chunked and decoded exactly like a file, so a WAV file and its samples give the same
numbers and statuses.

Core package: no Ray, no MLflow. This ``__init__`` imports nothing, so that the job config can
read the options without pulling in numpy or torch.
"""
