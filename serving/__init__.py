"""Serving for the spectrogram GAN generator.

* `serving.server`: a TensorFlow Serving REST-compatible server (FastAPI + uvicorn) with a
  small web page, for machines without TF Serving.
* `serving.client`: asks any such server (ours or real TF Serving) for samples and writes
  PNG spectrograms and WAV audio.
* `serving/tf_serving/`: configuration and commands for running real TF Serving.

The client imports neither TensorFlow nor FastAPI, so notebooks can use it on its own.
"""
