"""Training labels from annotated photos: 3DMM fits to sparse landmarks, teacher labels, face profiling, the build."""
