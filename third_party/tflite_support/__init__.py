"""tflite-support's TFLite metadata schema and flatc's Python of it (see README.md here)."""
