"""Image-quality measures used by training, fusion and the benchmarks: PSNR, SSIM, colour
statistics and Fréchet distance, and a download-free perceptual style distance. Imports only
:mod:`engine.core`."""
