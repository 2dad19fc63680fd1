"""Applications: `enhance` on whole photos (`enhance_lib` for one photo, `photo_files` for the batch over files)."""
