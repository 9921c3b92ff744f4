"""What a scene plan may contain, for both its writer (nfs_synth's planner) and its reader (the
renderers). Plain data, no bpy: `import blender_scenes.plan_format` does not start Blender."""

PLAN_VERSION = 1
# Each primitive's bounding-box half extents at unit scale (Blender's default meshes; sizes are
# described in nfs_synth/scene/plan.py), in the recipe's order.
PRIMITIVE_HALF_EXTENTS = {"cube": (1, 1, 1), "uv_sphere": (1, 1, 1), "ico_sphere": (1, 1, 1),
                          "cylinder": (1, 1, 1), "cone": (1, 1, 1), "torus": (1.25, 1.25, 0.25),
                          "plane": (1, 1, 0)}
PRIMITIVES = tuple(PRIMITIVE_HALF_EXTENTS)
LIGHT_TYPES = ("SUN", "AREA", "POINT")
# The camera's clipping range (m): depth reads CLIP_END_M where no surface is hit.
CLIP_START_M, CLIP_END_M = 0.01, 1.0e4
