"""Models: cameras, Plücker rays, the LFN, the volumetric baseline, depth, checkpoints.

Nothing here imports GL, ImGui or the viewer: this package runs on a headless GPU box.
"""
