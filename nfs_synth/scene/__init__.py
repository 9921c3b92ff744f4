"""Stage 1: what a scene is. Recipes (schema, validation), seeded scene plans, textures, optics."""
