"""Scoring stylized images: paired scores (MAE, PSNR, SSIM), the checkerboard score, and `cyclegan eval`."""
