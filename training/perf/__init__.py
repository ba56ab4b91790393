"""python -m training.perf: how fast the pipeline, the train step and serving are, and why.

    python -m training.perf [--out DIR] [--quick] [--gpu] [--sections a,b,...]

Measures in one run, on one machine, and writes DIR/perf.json and DIR/perf.md:

  machine      versions, threads, load, the float32 matmul rate (the CPU's practical peak).
  pipeline     spectrogram examples/s of `tfgan.data.pipeline.make_dataset` on the built-in
               dataset, cold (decode + resample + STFT, cache off) and warm (cached), against
               a librosa + NumPy loop (what a PyTorch `Dataset` usually does), and against
               the train step's consumption.
  train        steps/s and examples/s of the real `GAN.train_step` (`build_gan`, tf.function,
               fixed in-memory batch, after warm-up) for both discriminators at both presets,
               against the same networks in a plain PyTorch eager loop (`training.perf_torch`)
               at the same thread count, interleaved round by round so both see the same
               machine load. FLOPs per step (analytic, cross-checked with tf.profiler) and the
               achieved fraction of the matmul rate.
  profile      the train step's kernel time by op type (tf.profiler trace).
  experiments  train-step variants in child processes: XLA, grappler remapping off, Keras's
               unfused BatchNorm, mixed_bfloat16, inter-op threads, oneDNN off; and the
               pipeline with tensorflow-io's resampler.
  serving      predict latency p50/p99 and throughput on `serving.server` (loopback), batch 1
               and 16, spectrogram and audio signatures, 1 and 8 concurrent clients.
  scaling      seconds per step against batch size and spectrogram size.
  gpu          mixed_float16 vs float32, MirroredStrategy, TFLOP/s vs peak; skipped with a
               note when no GPU is visible (and unless --gpu is given).

Timings on a shared machine vary with its load: each timing records wall and CPU seconds
and the load average, medians are reported, and arms that are compared run interleaved.
`--quick` runs every section with tiny models and counts (for the tests).
"""
