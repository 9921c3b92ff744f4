"""Turn a validated scene plan into Blender data: camera, world, lights, textured primitives."""
from __future__ import annotations

import math
from collections.abc import Mapping

import bpy
import numpy as np

from .plan_format import CLIP_END_M, CLIP_START_M

# Blender's primitive operators at their default sizes (cube/plane -1..1, radius 1, depth 2, torus
# 1/0.25), always with UV maps so image textures can be applied.
_ADD = {
    "cube": lambda **kw: bpy.ops.mesh.primitive_cube_add(size=2.0, calc_uvs=True, **kw),
    "plane": lambda **kw: bpy.ops.mesh.primitive_plane_add(size=2.0, calc_uvs=True, **kw),
    "uv_sphere": lambda **kw: bpy.ops.mesh.primitive_uv_sphere_add(
        radius=1.0, segments=48, ring_count=24, calc_uvs=True, **kw),
    "ico_sphere": lambda **kw: bpy.ops.mesh.primitive_ico_sphere_add(
        radius=1.0, subdivisions=3, calc_uvs=True, **kw),
    "cylinder": lambda **kw: bpy.ops.mesh.primitive_cylinder_add(
        radius=1.0, depth=2.0, vertices=48, calc_uvs=True, **kw),
    "cone": lambda **kw: bpy.ops.mesh.primitive_cone_add(
        radius1=1.0, radius2=0.0, depth=2.0, vertices=48, calc_uvs=True, **kw),
    "torus": lambda **kw: bpy.ops.mesh.primitive_torus_add(
        major_radius=1.0, minor_radius=0.25, generate_uvs=True, **kw),
}
# Curved primitives are shaded smooth so their facets do not add edges that the texture lacks.
_SMOOTH = {"uv_sphere", "ico_sphere", "torus"}


def build_scene(plan: Mapping, textures: Mapping[str, np.ndarray]) -> bpy.types.Object:
    """Populate the (freshly reset) current scene from the plan; return the camera object."""
    scene = bpy.context.scene
    cam = _camera(scene, plan["camera"])
    _world(scene, plan["world"])
    for i, light in enumerate(plan.get("lights", [])):
        _light(scene, f"light_{i:03d}", light)
    images = {tex_id: _image(tex_id, textures[tex_id])
              for tex_id in sorted({o["texture"] for o in plan["objects"]})}
    for i, obj in enumerate(plan["objects"]):
        _object(obj.get("name", f"obj_{i:03d}"), obj, images[obj["texture"]])
    if "motion" in plan:
        _animate(scene, cam, plan["motion"], plan["sweep"]["timestamps_us"])
    return cam


def _animate(scene, cam: bpy.types.Object, motion: Mapping, timestamps_us) -> None:
    """Keyframes: frame 0 is the rest pose (all-in-focus and depth), frame i + 1 the sweep's frame i.

    Keys hold exactly at their frames whatever the interpolation; the renderer sets each frame."""
    rest_us = motion["rest_time_us"]
    cam.keyframe_insert("rotation_euler", frame=0)
    cam.keyframe_insert("location", frame=0)
    for i, (euler, location) in enumerate(zip(motion["camera_rotation_euler_rad"], motion["camera_location_m"])):
        cam.rotation_euler, cam.location = euler, location
        cam.keyframe_insert("rotation_euler", frame=i + 1)
        cam.keyframe_insert("location", frame=i + 1)
    for name, velocity in motion["object_velocity_m_s"].items():
        obj = bpy.data.objects[name]
        rest = np.array(obj.location)
        obj.keyframe_insert("location", frame=0)
        for i, t_us in enumerate(timestamps_us):
            obj.location = rest + np.asarray(velocity) * (t_us - rest_us) * 1e-6
            obj.keyframe_insert("location", frame=i + 1)
    scene.frame_start, scene.frame_end = 0, len(timestamps_us)
    scene.frame_set(0)


def _camera(scene, spec: Mapping) -> bpy.types.Object:
    data = bpy.data.cameras.new("camera")
    data.lens = spec["focal_length_mm"]
    data.sensor_width = spec["sensor_width_mm"]
    data.sensor_fit = "HORIZONTAL"  # sensor_width spans the image width, whatever the aspect ratio
    data.clip_start, data.clip_end = CLIP_START_M, CLIP_END_M
    data.dof.aperture_fstop = spec["f_number"]
    data.dof.aperture_blades = spec.get("aperture_blades", 0)
    data.dof.aperture_rotation = math.radians(spec.get("aperture_rotation_deg", 0.0))
    cam = bpy.data.objects.new("camera", data)
    cam.location, cam.rotation_euler = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)  # looks down -Z, +Y up
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.render.resolution_x, scene.render.resolution_y = spec["width"], spec["height"]
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    return cam


def _world(scene, spec: Mapping) -> None:
    world = bpy.data.worlds.new("world")
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (*spec["color"], 1.0)
    background.inputs["Strength"].default_value = spec["strength"]
    scene.world = world


def _light(scene, name: str, spec: Mapping) -> None:
    data = bpy.data.lights.new(name, spec["type"])
    data.energy = spec["energy"]
    data.color = spec.get("color", (1.0, 1.0, 1.0))
    size = spec.get("size_m", 0.0)
    if spec["type"] == "AREA":
        data.size = size
    elif spec["type"] == "POINT":
        data.shadow_soft_size = size  # radius of the emitting sphere; a sun has no size in metres
    obj = bpy.data.objects.new(name, data)
    obj.location = spec["location_m"]
    obj.rotation_euler = spec.get("rotation_euler_rad", (0.0, 0.0, 0.0))
    scene.collection.objects.link(obj)


def _image(tex_id: str, pixels: np.ndarray) -> bpy.types.Image:
    """An sRGB byte image: Blender decodes sRGB to linear when it samples the texture."""
    h, w, _ = pixels.shape
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = np.clip(pixels, 0.0, 1.0)[::-1]  # Blender stores rows bottom-up
    image = bpy.data.images.new(f"tex_{tex_id}", width=w, height=h, alpha=False)
    image.colorspace_settings.name = "sRGB"
    image.pixels.foreach_set(rgba.ravel())
    return image


def _object(name: str, spec: Mapping, image: bpy.types.Image) -> None:
    _ADD[spec["primitive"]](location=spec["location_m"], rotation=spec["rotation_euler_rad"])
    obj = bpy.context.active_object
    obj.name = name
    obj.scale = spec["scale"]
    if spec["primitive"] in _SMOOTH:
        _shade_smooth_deterministic(obj.data)
    obj.data.materials.append(_material(name, image, spec.get("roughness", 0.5)))


def _shade_smooth_deterministic(mesh: bpy.types.Mesh) -> None:
    """Smooth shading with vertex normals computed here, in a fixed order.

    Blender's own vertex normals differ in the last bits from process to process (measured: a new
    hash in most runs, even on one core), which made identical plans render different frames and so
    different events. Normals stored as a point-domain `custom_normal` attribute are used as given.
    """
    mesh.shade_smooth()
    co = np.empty(len(mesh.vertices) * 3, np.float64)
    mesh.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)
    corner_vertex = np.empty(len(mesh.loops), np.int64)
    mesh.loops.foreach_get("vertex_index", corner_vertex)
    start = np.empty(len(mesh.polygons), np.int64)
    count = np.empty(len(mesh.polygons), np.int64)
    mesh.polygons.foreach_get("loop_start", start)
    mesh.polygons.foreach_get("loop_total", count)
    face = np.repeat(np.arange(len(start)), count)
    following = np.arange(len(corner_vertex)) + 1
    following[start + count - 1] = start                       # each polygon's corners wrap around
    # Newell's method: the summed corner cross products are the face normal times twice its area,
    # so the per-vertex sum is area-weighted.
    face_normal = np.zeros((len(start), 3))
    np.add.at(face_normal, face, np.cross(co[corner_vertex], co[corner_vertex[following]]))
    vertex_normal = np.zeros_like(co)
    np.add.at(vertex_normal, corner_vertex, face_normal[face])
    vertex_normal /= np.maximum(np.linalg.norm(vertex_normal, axis=1, keepdims=True), 1e-30)
    attr = mesh.attributes.new("custom_normal", "FLOAT_VECTOR", "POINT")
    attr.data.foreach_set("vector", vertex_normal.astype(np.float32).ravel())


def _material(name: str, image: bpy.types.Image, roughness: float) -> bpy.types.Material:
    mat = bpy.data.materials.new(f"mat_{name}")
    nodes = mat.node_tree.nodes
    bsdf = nodes.get("Principled BSDF") or nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.inputs["Roughness"].default_value = roughness
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = image
    tex.extension = "REPEAT"
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat
