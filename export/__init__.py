"""SavedModel export of a trained generator for TensorFlow Serving."""
