"""Stage 2: plans to pixels. The engine registry and the bpy-free layered compositor (Blender itself is
`blender_scenes`)."""
