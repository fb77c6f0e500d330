"""Code written elsewhere and vendored here, each folder with its source and its licence."""
