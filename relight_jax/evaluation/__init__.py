"""Evaluation: the Eval sets of report §3.5 and what they are measured with.

`evaluate` (a workdir on Eval, Eval[c_I = c_T], Eval[d_I = d_T]: metrics.json, tables,
sheets), `metrics` (MSE, PSNR, SSIM, LPIPS, Score, latent distances, light estimates),
`results` (bootstrap intervals over scenes, paired ratios, Markdown tables), `visualize`
(image grids and light glyphs), `challenge_pairs` (NTIRE 2021 / AIM 2020 fixed pairs).
"""
