"""Image-quality metrics: standard FID (`fid`, `inception`), PSNR/SSIM (`image`), identity (`identity`).

Submodules are imported explicitly by their users so that, e.g., PSNR needs neither the
Inception weights nor dlib.
"""
