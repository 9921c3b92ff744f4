"""The only package that imports bpy: builds a scene plan in Blender and renders it."""
