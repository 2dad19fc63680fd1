"""Serving: the SavedModel export (`export_lib`) and its contract (`signatures`), and uint8 face upscalers (`upscalers`)."""
