"""One scene end to end: plan -> render -> sensors -> scene file. The unit of work everywhere.

Frames stream from the renderer straight into the file and the simulators, so memory does not grow
with sweep length. The same `SensorRig` re-simulates stored renders for sensor studies.
"""
from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import h5py
import numpy as np

from nfs_synth.render import engines
from nfs_synth.scene import motion, optics, plan as plans, seeds, textures
from nfs_synth.corpus.scene_file import SceneWriter, content_hash, scene_name, set_wall_clock_attrs
from nfs_synth.sensors import rgb_camera
from nfs_synth.run.stages import StageClock
from nfs_synth.scene.recipe import scene_recipe_json


class SensorRig:
    """The enabled sensors of a recipe, fed frame by frame, writing into an open scene file.

    Simulation counts to the stages "events" and "spikes" of `clock`, writing to "hdf5".
    """

    def __init__(self, recipe: dict, index: int, height: int, width: int, h5file,
                 clock: StageClock | None = None):
        seed = recipe["corpus"]["seed"]
        self.clock = clock or StageClock()
        self.parts = []            # (stage, convert frame, simulator, writer, finish(writer, t_end))
        ev_cfg, sp_cfg = recipe["sensors"]["events"], recipe["sensors"]["spikes"]
        if ev_cfg["enabled"]:
            with self.clock.stage("events"):
                from nfs_synth.corpus.events_io import EventWriter
                from nfs_synth.sensors import events

                sim, attrs = events.from_recipe(ev_cfg, seeds.scene_seed(seed, index, seeds.EVENTS),
                                                height, width)
            self.parts.append(("events", lambda rgb, c=ev_cfg: events.rgb_to_gray(rgb, c["intensity"]), sim,
                               EventWriter(h5file, height, width, attrs, recipe["corpus"]["event_compression"]),
                               lambda w, t: w.close(t)))
        if sp_cfg["enabled"]:
            with self.clock.stage("spikes"):
                from nfs_synth.corpus.spikes_io import SpikeWriter
                from nfs_synth.sensors import spikes

                sim, attrs = spikes.from_recipe(sp_cfg, seeds.scene_seed(seed, index, seeds.SPIKES),
                                                height, width)
            self.parts.append(("spikes", lambda rgb, c=sp_cfg: spikes.rgb_to_intensity(rgb, c["intensity_scale"]),
                               sim, SpikeWriter(h5file, height, width, attrs), lambda w, t: w.close()))

    def feed(self, rgb: np.ndarray, t_us: int) -> None:
        for stage, convert, sim, writer, _ in self.parts:
            with self.clock.stage(stage):
                out = sim.feed(convert(rgb), int(t_us))
            with self.clock.stage("hdf5"):
                writer.append(out)

    def close(self, t_end_us: int) -> None:
        with self.clock.stage("hdf5"):
            for _, _, _, writer, finish in self.parts:
                finish(writer, int(t_end_us))


class RgbCameraOutput:
    """The RGB camera of an enabled `rgb_camera` table: renders at its resolution come in, its captures
    and ground truth go to the file's rgb group, and the neuromorphic sensor's view (each pixel the mean
    of its scale x scale block, or of as many points through the beam splitter's misalignment) goes on
    to the frames and sensors."""

    def __init__(self, recipe: dict, index: int, out: SceneWriter, frames: int, height: int, width: int):
        cfg = recipe["rgb_camera"]
        self.scale = cfg["scale"]
        seed = seeds.scene_seed(recipe["corpus"]["seed"], index, seeds.RGB)
        noise_rng, misalign_rng = rgb_camera.streams(seed)
        self.camera = rgb_camera.RgbCamera(cfg, noise_rng)
        misaligned = any(cfg[k] > 0 for k in rgb_camera.MISALIGNMENT_KEYS)
        misalignment, drawn = (rgb_camera.draw_misalignment(cfg, misalign_rng, height, width) if misaligned
                               else (None, {}))
        to_sensor = rgb_camera.to_sensor_matrix(self.scale, misalignment)
        # aligned: the block mean, exact and cheaper than reading the same points through the homography
        self.misaligned_view = rgb_camera.SensorView(to_sensor, height, width, self.scale) if misaligned else None
        out.h5.create_group("rgb").attrs.update(rgb_camera.attrs(cfg, seed, drawn))
        self.captures = out.create_dataset("rgb/captures", H=height, W=width, s=self.scale,
                                           C=rgb_camera.capture_count(frames, cfg["exposure_frames"]))
        out.write_array("rgb/to_sensor", to_sensor, "px")
        self.out, self.done = out, 0

    def _view(self, image: np.ndarray, depth: bool = False) -> np.ndarray:
        if self.misaligned_view is None:
            return rgb_camera.bin_to_sensor(image, self.scale, np.min if depth else np.mean)
        return self.misaligned_view(image, nearest_min=depth)

    def all_in_focus(self, aif: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.out.write_array("rgb/all_in_focus", aif.astype(np.float16).astype(np.float32), "linear RGB")
        # a sensor pixel's depth: the nearest surface it sees (a mean would invent depths at edges)
        return self._view(aif), self._view(depth, depth=True)

    def frame(self, frame: np.ndarray) -> np.ndarray:
        for capture in self.camera.feed(frame):
            self.captures[self.done] = capture
            self.done += 1
        return self._view(frame)


def write_motion(out: SceneWriter, plan: dict, cfg: dict) -> None:
    """The camera's path and the rest-to-frame homographies (sensor pixels) of a scene with motion."""
    move = plan["motion"]
    out.h5.create_group("motion").attrs.update(cfg | {"rest_time_us": move["rest_time_us"],
                                                       "object_velocity_json": json.dumps(move["object_velocity_m_s"],
                                                                                          sort_keys=True)})
    out.write_array("motion/camera_rotation_euler_rad", np.asarray(move["camera_rotation_euler_rad"]), "rad")
    out.write_array("motion/camera_location_m", np.asarray(move["camera_location_m"]), "m")
    out.write_array("motion/rest_to_frame", motion.homographies(plan), "px")


def render_scene(recipe: dict, index: int, path: Path, *, threads: int | None = None,
                 texture_refs: list[dict] | None = None, on_frame=None) -> dict:
    """Plan, render and simulate scene `index` into `path` (atomic). Returns its manifest entry.

    `on_frame(i)` runs after frame i is stored (the orchestrator's fault-injection hook). The file's
    `timings_json` holds the StageClock report (stages: plan, build, render_aif, render_frames, events,
    spikes, rgb, hdf5, hash) and the renderer's own `timings`; docs/cost.md reads them.
    """
    clock = StageClock()
    with clock.stage("plan"):
        plan = plans.sample_plan(recipe, index, texture_refs)
        pixels = {tid: textures.load_texture(ref, recipe["textures"]) for tid, ref in plan["textures"].items()}
    cam = plan["camera"]
    height, width = cam["height"], cam["width"]
    stamps = np.asarray(plan["sweep"]["timestamps_us"], np.int64)
    focus = np.asarray(plan["sweep"]["focus_distance_m"], np.float64)
    rgb_on = recipe["rgb_camera"]["enabled"]
    # with an RGB camera the scene is rendered at its resolution (same field of view); the plan stays the
    # neuromorphic sensor's
    scale = recipe["rgb_camera"]["scale"] if rgb_on else 1
    render_plan = plan | {"camera": cam | {"width": width * scale, "height": height * scale}} if rgb_on else plan
    with clock.stage("build"):
        renderer = engines.renderer_class(plan["render"]["engine"])(render_plan, pixels, threads=threads)
    with renderer, ExitStack() as scene_file:
        with clock.stage("hdf5"):
            out = scene_file.enter_context(SceneWriter(path, len(stamps), height, width))
            out.set_attrs(scene_index=index, seed=recipe["corpus"]["seed"], recipe_json=scene_recipe_json(recipe),
                          plan_json=plans.to_json(plan), blender_version=engines.blender_version(),
                          render_json=json.dumps(plan["render"] | getattr(renderer, "settings", {}),
                                                 sort_keys=True),
                          intensity="frames and all_in_focus are linear RGB; sensors document their own "
                                    "conversion in their group attributes")
            out.write_array("timestamps_us", stamps, "us")
            out.write_array("focus_distance_m", focus, "m (planar focus distance)")
            out.write_array("camera/K", optics.intrinsics(width, height, cam["focal_length_mm"],
                                                          cam["sensor_width_mm"]), "px")
            out.h5["camera"].attrs.update({k: v for k, v in cam.items()})
            if "motion" in plan:
                write_motion(out, plan, recipe["motion"])
            rgb = RgbCameraOutput(recipe, index, out, len(stamps), height, width) if rgb_on else None
        with clock.stage("render_aif"):
            aif, depth = renderer.all_in_focus()
        with clock.stage("hdf5"):
            if rgb is not None:
                aif, depth = rgb.all_in_focus(aif, depth)
            # Cycles output of smooth-shaded meshes varies in the last float32 bits between processes (up
            # to ~3e-5 relative, docs/scale_out.md); float16 precision, as for the frames, hides nearly all.
            out.write_array("all_in_focus", aif.astype(np.float16).astype(np.float32), "linear RGB")
            out.write_array("depth_m", depth.astype(np.float32), "m (planar depth)")
        rig = SensorRig(recipe, index, height, width, out.h5, clock)
        if hasattr(renderer, "background_cpu_s"):   # frames composited ahead while this thread writes
            clock.count_background("render_frames", renderer.background_cpu_s)
        for i, frame in enumerate(clock.each("render_frames", renderer.sweep())):
            # The sensors see the frame as stored (float16), so a sensor study re-simulating the
            # file with unchanged parameters reproduces these streams bit for bit.
            if rgb is not None:
                with clock.stage("rgb"):
                    frame = rgb.frame(frame)
            with clock.stage("hdf5"):
                stored = frame.astype(np.float16)
                out.write_frame(i, stored)
            rig.feed(stored.astype(np.float32), stamps[i])
            if on_frame is not None:
                on_frame(i)
        rig.close(int(stamps[-1]))
        with clock.stage("hdf5"):
            scene_file.close()        # flush, close and rename: the scene file is complete
        with clock.stage("build"):
            renderer.close()
    with clock.stage("hash"):
        sha256 = content_hash(path)
    timings = clock.report() | {"renderer": renderer.timings}
    set_wall_clock_attrs(path, timings_json=json.dumps(timings), wall_seconds=timings["wall_s"])
    return scene_entry(path, index, sha256) | {"seconds": round(timings["wall_s"], 3)}


def scene_entry(path: Path, index: int, sha256: str | None = None) -> dict:
    """The manifest entry of a complete scene file (also for files found without an entry); `sha256`
    when its content hash is known already."""
    with h5py.File(path, "r") as h5:
        frames, height, width = h5["frames"].shape[:3]
        events = h5["events/t"].shape[0] if "events" in h5 else 0
        spike_steps = h5["spikes/t_us"].shape[0] if "spikes" in h5 else 0
    return {"index": index, "file": f"scenes/{path.name}", "status": "complete",
            "sha256": sha256 or content_hash(path), "bytes": path.stat().st_size, "frames": frames,
            "height": height, "width": width, "events": events, "spike_steps": spike_steps}


def scene_path(out_dir: str | Path, index: int) -> Path:
    return Path(out_dir) / "scenes" / scene_name(index)
