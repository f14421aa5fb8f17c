"""Data-set tools: car meshes (TORCS AC3D files, procedural cars), offscreen rendering, export."""
