"""Physics-inspired SBND events: cosmic rays and a neutrino interaction in a
3D detector, drifted and projected consistently onto the three wire planes.

The real sample (5 events, tests/data/cosmic_tagging_light.h5, shipped with the repository) shows
how the images are laid out, and this generator follows it:

* Rows are drift time. SBND has two 2 m drift volumes either side of a
  central cathode; the upper half of the image (rows 0-639) is the x < 0
  volume with its anode at row 0, the lower half the x > 0 volume with its
  anode at row 1279, so a trigger-time track crossing the cathode is
  continuous at row 640. A point has the same row in all three planes.
* Columns are wires at 0.3 cm pitch, u = z cos(a) + y sin(a) with a = +60,
  -60 and 0 degrees, centred in the 2048 columns: the induction planes span
  1,988 columns, the collection plane 1,667 (the sample: columns 31-2016 and
  191-1856). Reduced shapes keep the field of view with coarser pitches.
* Cosmic muons (PDG surface intensity, cos^2 zenith, p^-2.7 spectrum) come
  through the volume from every side at a random time t0 within one drift
  time of the trigger; a late muon's charge arrives as if it had drifted
  further, so each half of it shifts towards the cathode and what would
  arrive outside the window is cut: tracks end at the middle row and at the
  image borders. Delta rays hang off them.
* The neutrino interacts at the trigger time at one vertex: a muon, protons
  and maybe a pion range out (Bragg rise, dense short protons), one or two
  photons start a branching electromagnetic cascade (pair production,
  bremsstrahlung, Compton scattering, electrons wiggling by multiple
  scattering). All tracks scatter (Highland).
* Charge: samples every half pixel along each track, Landau-like dE/dx,
  Birks recombination, electron lifetime and diffusion; the response
  spreads each pixel's charge over nearby rows, wider on the induction
  planes. Labels mark where the ionisation lands (neutrino over cosmic over
  background where they overlap, charges add); the response's edges are
  charged but background, as ~10 % of the real sample's charged pixels are.
* Noise: Gaussian electronics noise on every charged pixel and, above the
  5.0 threshold, as hits on their own (some spanning consecutive ticks). As
  in the sample each induction plane is noisy in one drift volume (plane 0
  in the lower, plane 1 in the upper), so the induction planes have about
  twice the collection plane's hits and a ~5x lower median charge; their
  tracks carry charges much like the collection plane's.

Tolerances against the real sample, tested by tests/test_generator.py over
50 events (seed 1):

* class shares among charged voxels, pooled over all planes: within 5 points;
* charge percentiles (p5, p25, p50, p75, p95, p99) per plane type (induction
  planes 0 and 1, collection plane 2): within a factor 1.25;
* voxels per plane: the median per plane type within 25 %; at least 75 % of
  the planes within the sample's range 3,000-27,000 and all within
  1,000-50,000. The number of cosmic muons is Poisson, so about 15 % of
  induction planes have more than 27,000 voxels (the full real dataset reaches
  ~50,000); 5 real events span only about their 17th-83rd percentiles;
* in every event the collection plane has fewer voxels than each induction
  plane, and its median charge is over 3x theirs;
* the neutrino shows up in all three planes at the same drift times.

Measured (`stats.summarize`), 500 generated events (seed 0) vs the sample:

    quantity                          generated             real
    share background/cosmic/nu (%)    51.5 / 39.7 / 8.8     53.9 / 37.5 / 8.7
    induction voxels min/median/max   14,330/23,180/43,040  15,775/23,523/26,961
    collection voxels min/median/max  2,519/9,354/26,050    3,066/10,191/12,336
    induction charge p5/p50/p95/p99   5.07/6.80/92.5/153    5.07/6.65/80.0/144
    collection charge p5/p50/p95/p99  5.55/34.8/138/232     5.59/39.4/143/218
    planes within 3,000-27,000        84 %                  100 %

About 17 ms per event on one core (numpy only).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from benchmark.data.batch import BACKGROUND, COSMIC, N_PLANES, NEUTRINO
from benchmark.data.source import Event

GENERATOR_VERSION = "1"
SBND_SHAPE = (1280, 2048)
THRESHOLD = 5.0  # zero suppression, in the file's charge units

# Detector: the SBND active volume in cm. x is the drift coordinate (the
# cathode at x = 0 between two drift volumes, the anodes at x = +-200), y is
# vertical, z the beam axis.
DRIFT_LENGTH = 200.0
HEIGHT = 400.0
LENGTH = 500.0
BOX_LOW = np.array([-DRIFT_LENGTH, -HEIGHT / 2, 0.0])
BOX_HIGH = np.array([DRIFT_LENGTH, HEIGHT / 2, LENGTH])
WIRE_PITCH = 0.3  # cm between wires, 2048 columns at full resolution
# Wire angle from the vertical per plane: u = z cos(a) + y sin(a).
WIRE_ANGLES = np.radians([60.0, -60.0, 0.0])
DRIFT_VELOCITY = 0.16  # cm/us at 500 V/cm: a full drift takes 1.25 ms
ELECTRON_LIFETIME = 10_000.0  # us
DIFFUSION_LONGITUDINAL = 4.0e-6  # cm^2/us
DIFFUSION_TRANSVERSE = 8.8e-6  # cm^2/us

# Liquid argon.
MIP_DEDX = 2.1  # MeV/cm, a minimum-ionising particle
RADIATION_LENGTH = 14.0  # cm
CRITICAL_ENERGY = 32.0  # MeV: below it electrons lose more by ionisation than by radiation
BIRKS_A, BIRKS_K = 0.8, 0.0486 / (1.396 * 0.5)  # recombination (ICARUS), k in cm/MeV at 0.5 kV/cm
BRAGG_EXPONENT = 0.42  # dE/dx = A R^-0.42 at residual range R (cm)
BRAGG_PROTON, BRAGG_MUON = 17.0, 8.0  # A in MeV/cm^0.58
MUON_MASS, PROTON_MASS, PION_MASS, ELECTRON_MASS = 105.7, 938.3, 139.6, 0.511  # MeV

# Cosmic muons at the surface (PDG): intensity ~ cos^2(zenith), momentum
# spectrum ~p^-2.7 above ~1 GeV.
COSMIC_INTENSITY = 70.0  # vertical, per m^2 s sr
COSMIC_P_MIN = 1000.0  # MeV
COSMIC_SPECTRAL_INDEX = 2.7
# Delta rays: dN/dT dx = DELTA_K / T^2 for kinetic energies T_min..T_max.
DELTA_K = 0.0965  # MeV/cm: (K/2) (Z/A) rho for argon
DELTA_T_MIN, DELTA_T_MAX = 3.0, 100.0  # MeV; 3 MeV electrons travel ~1.5 cm (5 pixels)

# The neutrino interaction (BNB energies, ~1 GeV).
FIDUCIAL_MARGIN = 50.0  # cm from the walls for the vertex, as analyses select
CC_FRACTION = 0.7  # charged current: a muon leaves the vertex
MUON_ENERGY = (100.0, 1000.0)  # MeV kinetic, uniform
PROTONS_MEAN = 1.5  # Poisson
PROTON_ENERGY = (20.0, 80.0)  # MeV kinetic: threshold plus an exponential of this mean
PION_PROBABILITY = 0.3
PION_ENERGY = (50.0, 400.0)  # MeV kinetic, uniform
TWO_PHOTON_PROBABILITY = 0.5  # a pi0; otherwise one photon
PHOTON_ENERGY = (50.0, 500.0)  # MeV, uniform
# Products go forward along the beam: cos(angle to z) uniform from these.
MUON_COS_MIN, HADRON_COS_MIN = 0.3, -0.5
MCS_STEP = 5.0  # cm between multiple-scattering kicks
ELECTRON_MCS_STEP = 1.0  # cm, for electrons below the critical energy
PAIR_ENERGY = 15.0  # MeV: below it photons Compton-scatter rather than convert
COMPTON_LENGTH = 20.0  # cm: attenuation length of few-MeV photons
SHOWER_MIN_ENERGY = 0.5  # MeV: shower particles below it are dropped

# Readout. Labels mark the pixels the ionisation reaches; the electronics
# response spreads the charge a little further along the drift (rows), so
# tracks have unlabelled (background) edges, wider on the induction planes
# (their bipolar induced signal). Gains set the sample's charge scale.
SAMPLE_STEP = 0.5  # of a pixel, between the charge samples along a track
# The ionisation cloud's size beyond diffusion, in cm along the drift and
# across it: stands in for the simulation's deposit and wire-field response,
# which make the real sample's tracks ~2 rows by ~3 wires thick.
CLOUD_SPREAD = (0.08, 0.15)
LABEL_MIN_SHARE = 0.08  # of a pixel's ionisation that a row must get to be labelled
RESPONSE_SPREAD = (0.1, 0.1, 0.08)  # cm of drift, per plane
LANDAU_SHIFT = 2.5  # sets the width of the Landau-like fluctuation
GAIN = (190.0, 190.0, 175.0)  # charge units per MeV of collected charge, per plane
# Electronics noise RMS per plane in the upper (x < 0) and lower drift
# volumes: the real sample's induction planes are each noisy in one volume.
NOISE_RMS = ((1.58, 2.10), (2.10, 1.58), (1.41, 1.41))
NOISE_CONTINUATION = 0.28  # chance that a noise hit continues into the next time tick
# Charges saturate: the ADC's range above its baseline, which sits mid-range
# for the bipolar induction signals.
SATURATION = (2000.0, 2000.0, 4000.0)


class GeneratedSource:
    """`n_events` generated events; event `entry` is a pure function of (seed, entry)."""

    def __init__(self, n_events: int, seed: int, full_shape: Tuple[int, int] = SBND_SHAPE):
        if n_events < 0 or seed < 0:
            raise ValueError(f"n_events and seed must be >= 0, got {n_events} and {seed}")
        if full_shape[0] < 2 or full_shape[0] % 2 or full_shape[1] < 1:
            raise ValueError(f"full_shape needs an even number of rows (two drift volumes), got {full_shape}")
        self.n_events = int(n_events)
        self.seed = int(seed)
        self._readout = _Readout(int(full_shape[0]), int(full_shape[1]))

    @property
    def full_shape(self) -> Tuple[int, int]:
        return self._readout.rows, self._readout.cols

    def __len__(self) -> int:
        return self.n_events

    def read(self, entry: int) -> Event:
        entry = int(entry)
        if not 0 <= entry < self.n_events:
            raise IndexError(f"entry {entry} out of range for {self.n_events} generated events")
        return _generate(np.random.default_rng([self.seed, entry]), self._readout)


class _Readout:
    """Where a point of the detector lands in the images of a given shape."""

    def __init__(self, rows: int, cols: int):
        self.rows, self.cols = rows, cols
        self.row_pitch = 2 * DRIFT_LENGTH / rows  # cm of drift per row
        self.col_pitch = WIRE_PITCH * SBND_SHAPE[1] / cols
        corners = np.array([[y, z] for y in (BOX_LOW[1], BOX_HIGH[1]) for z in (BOX_LOW[2], BOX_HIGH[2])])
        u = corners[:, 1:2] * np.cos(WIRE_ANGLES) + corners[:, 0:1] * np.sin(WIRE_ANGLES)
        n_wires = (u.max(axis=0) - u.min(axis=0)) / self.col_pitch
        # The wires are centred in the image, as in the real sample.
        self.first_wire = (cols - n_wires) / 2
        self.col_offset = self.first_wire - u.min(axis=0) / self.col_pitch
        self.n_wires = n_wires

    def columns(self, y: np.ndarray, z: np.ndarray, plane: int) -> np.ndarray:
        a = WIRE_ANGLES[plane]
        return (z * math.cos(a) + y * math.sin(a)) / self.col_pitch + self.col_offset[plane]


@dataclass
class _Tracks:
    """Straight pieces of charged-particle paths (cm, detector frame)."""

    start: np.ndarray  # [n, 3]
    end: np.ndarray  # [n, 3]
    residual: np.ndarray  # [n] range left at `end` (cm); inf if the particle does not stop
    bragg: np.ndarray  # [n] A of dE/dx = A R^-0.42; 0 for minimum ionising throughout
    label: np.ndarray  # uint8 [n]
    shift: np.ndarray  # [n] arrival-time offset t0 in cm of drift (0 for the neutrino)


def _concatenate(parts) -> _Tracks:
    return _Tracks(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Tracks.__dataclass_fields__))


def generate_event(rng: np.random.Generator, shape: Tuple[int, int] = SBND_SHAPE) -> Event:
    """One event of planes of `shape` (an even number of rows) from `rng`."""
    return _generate(rng, _Readout(int(shape[0]), int(shape[1])))


def _generate(rng, readout: _Readout) -> Event:
    """Cosmics and a neutrino, sampled, drifted and read out."""
    muons = _cosmic_muons(rng)
    tracks = _concatenate([muons, _delta_rays(rng, muons), _neutrino(rng)])
    deposits = _deposits(rng, tracks, readout)
    planes = [_read_plane(rng, deposits, readout, p) for p in range(N_PLANES)]
    index, value, label = zip(*planes)
    return Event(index=index, value=value, label=label)


# ---------------------------------------------------------------- particles


def _cosmic_muons(rng) -> _Tracks:
    """Muons arriving within one drift time either side of the trigger, kept
    where they cross the active volume. Each comes from a direction drawn
    from the cos^2(zenith) intensity through a disk perpendicular to it that
    covers the volume, so steep muons enter through the top and shallow ones
    through the sides in proportion to the faces they see."""
    radius = 0.5 * np.linalg.norm(BOX_HIGH - BOX_LOW)
    window = 2 * DRIFT_LENGTH / DRIFT_VELOCITY * 1e-6  # s
    # Per second through the disk: the cos^2 intensity integrated over the sky.
    rate = COSMIC_INTENSITY * 2 * np.pi / 3 * np.pi * radius**2 * 1e-4
    n = rng.poisson(rate * window)
    cos_zenith = rng.random(n) ** (1 / 3)  # density ~cos^2 in cos(zenith)
    sin_zenith = np.sqrt(1 - cos_zenith**2)
    azimuth = rng.uniform(0, 2 * np.pi, n)
    direction = np.stack([sin_zenith * np.cos(azimuth), -cos_zenith, sin_zenith * np.sin(azimuth)], axis=1)
    e1, e2 = _perpendicular(direction)
    r = radius * np.sqrt(rng.random((n, 1)))
    angle = rng.uniform(0, 2 * np.pi, (n, 1))
    origin = (BOX_LOW + BOX_HIGH) / 2 + r * (np.cos(angle) * e1 + np.sin(angle) * e2) - radius * direction
    t_in, t_out = _box_crossing(origin, direction)
    hit = t_out > t_in
    entry = origin[hit] + t_in[hit, None] * direction[hit]
    momentum = COSMIC_P_MIN * (1 - rng.random(hit.sum())) ** (-1 / (COSMIC_SPECTRAL_INDEX - 1))
    # The arrival time t0, uniform in +-1 drift time, as a drift distance.
    shift = rng.uniform(-DRIFT_LENGTH, DRIFT_LENGTH, hit.sum())
    return _polylines(rng, entry, direction[hit], t_out[hit] - t_in[hit], momentum, MUON_MASS,
                      bragg=0.0, stops=False, label=COSMIC, shift=shift)


def _box_crossing(origin, direction):
    """Line parameters where each line enters and leaves the active volume
    (enter >= leave: it misses); a direction parallel to a face gives
    infinities that compare correctly."""
    with np.errstate(divide="ignore"):
        low = (BOX_LOW - origin) / direction
        high = (BOX_HIGH - origin) / direction
    t_in = np.minimum(low, high).max(axis=1)
    t_out = np.maximum(low, high).min(axis=1)
    return np.maximum(t_in, 0.0), t_out


def _delta_rays(rng, muons: _Tracks) -> _Tracks:
    """Knock-on electrons along the muons: 1/T^2 in energy, at the angle
    cos(theta) = sqrt(T / (T + 2 m_e)) from the muon, ranging out."""
    path = muons.end - muons.start
    length = np.linalg.norm(path, axis=1)
    rate = DELTA_K * (1 / DELTA_T_MIN - 1 / DELTA_T_MAX)  # per cm
    n = rng.poisson(rate * length)
    parent = np.repeat(np.arange(n.size), n)
    origin = muons.start[parent] + rng.random((parent.size, 1)) * path[parent]
    energy = 1 / (1 / DELTA_T_MIN - rng.random(parent.size) * (1 / DELTA_T_MIN - 1 / DELTA_T_MAX))
    axis = path[parent] / length[parent, None]
    direction = _tilt(rng, axis, np.sqrt(energy / (energy + 2 * ELECTRON_MASS)))
    return _electrons(rng, origin, direction, energy, COSMIC, muons.shift[parent])


def _neutrino(rng) -> _Tracks:
    """A beam neutrino interaction at the trigger time: a muon (charged
    current), protons, maybe a charged pion, all ranging out from the
    vertex unless they leave, and one or two photon showers."""
    vertex = rng.uniform(BOX_LOW + FIDUCIAL_MARGIN, BOX_HIGH - FIDUCIAL_MARGIN)
    parts = []
    if rng.random() < CC_FRACTION:
        energy = rng.uniform(*MUON_ENERGY, 1)
        direction = _forward(rng, 1, MUON_COS_MIN)
        parts.append(_stopping(rng, vertex, direction, energy, MUON_MASS, BRAGG_MUON, energy / MIP_DEDX))
    n_protons = rng.poisson(PROTONS_MEAN)
    energy = PROTON_ENERGY[0] + rng.exponential(PROTON_ENERGY[1], n_protons)
    proton_range = (energy * (1 - BRAGG_EXPONENT) / BRAGG_PROTON) ** (1 / (1 - BRAGG_EXPONENT))
    direction = _forward(rng, n_protons, HADRON_COS_MIN)
    parts.append(_stopping(rng, vertex, direction, energy, PROTON_MASS, BRAGG_PROTON, proton_range))
    if rng.random() < PION_PROBABILITY:
        energy = rng.uniform(*PION_ENERGY, 1)
        direction = _forward(rng, 1, HADRON_COS_MIN)
        parts.append(_stopping(rng, vertex, direction, energy, PION_MASS, BRAGG_MUON, energy / MIP_DEDX))
    n_photons = 2 if rng.random() < TWO_PHOTON_PROBABILITY else 1
    direction = _forward(rng, n_photons, HADRON_COS_MIN)
    parts.append(_shower(rng, vertex, direction, rng.uniform(*PHOTON_ENERGY, n_photons)))
    return _concatenate(parts)


def _stopping(rng, vertex, direction, energy, mass, bragg, track_range) -> _Tracks:
    """Particles of the interaction leaving the vertex and ranging out."""
    momentum = np.sqrt(energy**2 + 2 * energy * mass)
    start = np.broadcast_to(vertex, direction.shape)
    return _polylines(rng, start, direction, track_range, momentum, mass, bragg=bragg, stops=True,
                      label=NEUTRINO, shift=np.zeros(direction.shape[0]))


def _shower(rng, vertex, direction, energy) -> _Tracks:
    """Photons into a branching electromagnetic cascade. A photon converts
    into an e+e- pair after ~9/7 X0 or, below PAIR_ENERGY, Compton-scatters
    after ~COMPTON_LENGTH, giving part of its energy to an electron; an
    electron radiates a photon after ~X0 and ranges out below the critical
    energy, scattering as it goes. Energies split uniformly. Photons leave
    no charge, so the shower has gaps and scattered pieces around a core."""
    position = np.broadcast_to(vertex, direction.shape).copy()
    charged = np.zeros(direction.shape[0], bool)
    straight, ranging = [], []
    while energy.size:
        stops = charged & (energy < CRITICAL_ENERGY)
        ranging.append((position[stops], direction[stops], energy[stops]))
        compton = ~charged & (energy < PAIR_ENERGY)
        photon_path = np.where(compton, COMPTON_LENGTH, 9 / 7 * RADIATION_LENGTH)
        mean_free_path = np.where(charged, RADIATION_LENGTH, photon_path)
        travel = rng.exponential(mean_free_path)
        travel = np.where(charged, np.minimum(travel, energy / MIP_DEDX), travel)
        end = position + direction * travel[:, None]
        moving = charged & ~stops
        straight.append((position[moving], end[moving]))
        energy = np.where(charged, energy - MIP_DEDX * travel, energy)
        alive = ~stops & (energy > SHOWER_MIN_ENERGY)
        position, direction, energy = end[alive], direction[alive], energy[alive]
        charged, compton, travel = charged[alive], compton[alive], travel[alive]
        # Each survivor splits in two: the particle it makes (an electron
        # from a photon, a photon from an electron) and the other one (the
        # second electron of a pair, the Compton photon, the electron).
        share = rng.random(energy.size)
        energy = np.concatenate([energy * share, energy * (1 - share)])
        made_charged = ~charged
        other_charged = ~compton
        # The children leave at the Highland angle of the path just
        # travelled (standing in for the parent's scattering and the
        # opening angles); a Compton photon turns by a large angle.
        scatter = np.minimum(13.6 / energy * np.sqrt(np.tile(travel, 2) / RADIATION_LENGTH), 1.0)
        cos_theta = np.cos(rng.normal(0, 1, energy.size) * scatter)
        cos_theta[energy.size // 2:][compton] = rng.random(int(compton.sum()))
        position = np.concatenate([position, position])
        direction = _tilt(rng, np.concatenate([direction, direction]), cos_theta)
        charged = np.concatenate([made_charged, other_charged])
    start = np.concatenate([s for s, _ in straight])
    n = start.shape[0]
    cores = _Tracks(start, np.concatenate([e for _, e in straight]), np.full(n, np.inf), np.zeros(n),
                    np.full(n, NEUTRINO, np.uint8), np.zeros(n))
    position, direction, energy = (np.concatenate(part) for part in zip(*ranging))
    return _concatenate([cores, _electrons(rng, position, direction, energy, NEUTRINO, np.zeros(energy.size))])


def _electrons(rng, start, direction, energy, label, shift) -> _Tracks:
    """Low-energy electrons ranging out (range ~ T / MIP_DEDX), wiggling by
    multiple scattering every ELECTRON_MCS_STEP."""
    momentum = np.sqrt(energy**2 + 2 * energy * ELECTRON_MASS)
    return _polylines(rng, start, direction, energy / MIP_DEDX, momentum, ELECTRON_MASS, bragg=0.0, stops=False,
                      label=label, shift=shift, spacing=ELECTRON_MCS_STEP)


def _polylines(rng, start, direction, length, momentum, mass, bragg, stops, label, shift,
               spacing=MCS_STEP) -> _Tracks:
    """Tracks as chains of pieces about `spacing` cm long with Highland
    multiple-scattering kicks between them, the deflections added in the
    small-angle approximation, the momentum taken as constant."""
    n = np.maximum(np.ceil(length / spacing), 1).astype(np.int64)
    piece = length / n
    track = np.repeat(np.arange(n.size), n)
    energy = np.sqrt(momentum**2 + mass**2)
    theta0 = 13.6 * energy / momentum**2 * np.sqrt(piece / RADIATION_LENGTH)  # 13.6 MeV / (beta p)
    kicks = rng.normal(0, 1, (track.size, 2)) * theta0[track, None]
    first = np.cumsum(n) - n
    # The angle accumulated before each piece, restarted for every track.
    angle = np.cumsum(kicks, axis=0) - kicks
    angle -= np.repeat(angle[first], n, axis=0)
    e1, e2 = _perpendicular(direction)
    step = direction[track] + angle[:, :1] * e1[track] + angle[:, 1:] * e2[track]
    step *= (piece[track] / np.linalg.norm(step, axis=1))[:, None]
    end = np.cumsum(step, axis=0)
    end -= np.repeat(end[first] - step[first], n, axis=0)
    end += start[track]
    along = np.arange(track.size) - np.repeat(first, n) + 1
    residual = (length[track] - along * piece[track]) if stops else np.full(track.size, np.inf)
    return _Tracks(end - step, end, residual, np.full(track.size, bragg),
                   np.full(track.size, label, np.uint8), shift[track])


def _perpendicular(direction):
    """Two unit vectors perpendicular to each unit direction and each other."""
    helper = np.where(np.abs(direction[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    e1 = np.cross(direction, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(direction, e1)


def _tilt(rng, axis, cos_theta):
    """Directions at polar angle acos(cos_theta) from `axis`, azimuth uniform."""
    e1, e2 = _perpendicular(axis)
    phi = rng.uniform(0, 2 * np.pi, axis.shape[0])
    sin_theta = np.sqrt(np.clip(1 - cos_theta**2, 0, 1))
    return (cos_theta[:, None] * axis + (sin_theta * np.cos(phi))[:, None] * e1
            + (sin_theta * np.sin(phi))[:, None] * e2)


def _forward(rng, n, cos_min):
    """Directions boosted along the beam (z): cos(theta) uniform in cos_min..1."""
    return _tilt(rng, np.tile([0.0, 0.0, 1.0], (n, 1)), rng.uniform(cos_min, 1.0, n))


# ---------------------------------------------------------------- charge


@dataclass
class _Deposits:
    """Charge samples after the drift, shared by the three planes."""

    y: np.ndarray  # cm, after transverse diffusion
    z: np.ndarray
    row: np.ndarray  # float row of arrival, the same in every plane
    spread: np.ndarray  # longitudinal spread of the arrival, squared, in rows^2
    charge: np.ndarray  # collected charge, MeV
    label: np.ndarray


def _deposits(rng, tracks: _Tracks, readout: _Readout) -> _Deposits:
    """Samples along the tracks at sub-pixel steps: dE/dx with Landau-like
    fluctuations, recombination, attenuation and diffusion on the way to the
    anode, and the arrival row shifted by the track's t0."""
    # Skip pieces that arrive outside the window (cosmics at a large t0).
    # On one side of the cathode the window is an interval of x and pieces
    # are much shorter than a drift length: a piece with both ends outside
    # it on one side is outside throughout.
    seen = _seen(tracks.start[:, 0], tracks.shift, readout) | _seen(tracks.end[:, 0], tracks.shift, readout)
    crosses = np.sign(tracks.start[:, 0]) != np.sign(tracks.end[:, 0])
    tracks = _Tracks(*(getattr(tracks, f)[seen | crosses] for f in _Tracks.__dataclass_fields__))

    path = tracks.end - tracks.start
    length = np.linalg.norm(path, axis=1)
    step = SAMPLE_STEP * min(readout.row_pitch, readout.col_pitch)
    n = np.maximum(np.ceil(length / step), 1).astype(np.int64)
    piece = np.repeat(np.arange(n.size), n)
    frac = (np.arange(piece.size) - np.repeat(np.cumsum(n) - n, n) + rng.random(piece.size)) / n[piece]
    point = tracks.start[piece] + frac[:, None] * path[piece]
    inside = np.all((point >= BOX_LOW) & (point < BOX_HIGH), axis=1)
    inside &= _seen(point[:, 0], tracks.shift[piece], readout)
    point, piece, frac = point[inside], piece[inside], frac[inside]

    residual = tracks.residual[piece] + (1 - frac) * length[piece]
    dedx = np.maximum(MIP_DEDX, tracks.bragg[piece] * residual**-BRAGG_EXPONENT) * _landau(rng, piece.size)
    charge = BIRKS_A * dedx / (1 + BIRKS_K * dedx) * (length / n)[piece]

    x, y, z = point.T
    time = (DRIFT_LENGTH - np.abs(x)) / DRIFT_VELOCITY  # to the anode of the sample's volume
    charge *= np.exp(-time / ELECTRON_LIFETIME)
    sigma_t = np.sqrt(2 * DIFFUSION_TRANSVERSE * time + CLOUD_SPREAD[1] ** 2)
    y = y + rng.standard_normal(y.size) * sigma_t
    z = z + rng.standard_normal(z.size) * sigma_t
    spread = (2 * DIFFUSION_LONGITUDINAL * time + CLOUD_SPREAD[0] ** 2) / readout.row_pitch**2
    return _Deposits(y, z, _row(x, tracks.shift[piece], readout), spread, charge, tracks.label[piece])


def _row(x, shift, readout: _Readout):
    """Float image row of charge from drift coordinate x arriving `shift` cm
    of drift late: the upper half of the image is the x < 0 volume, its
    anode at row 0; a late arrival looks like a longer drift, towards the
    cathode in the middle."""
    return (x + DRIFT_LENGTH + np.where(x < 0, shift, -shift)) / readout.row_pitch


def _seen(x, shift, readout: _Readout):
    """Whether charge from x arrives within its own volume's readout window."""
    row = _row(x, shift, readout)
    half = readout.rows // 2
    return np.where(x < 0, (row >= 0) & (row < half), (row >= half) & (row < readout.rows))


def _landau(rng, n):
    """Multiplicative Landau-like fluctuation of mean ~1: a shifted Moyal
    variate -ln(Z^2) (Z normal), whose long upper tail is the Landau's,
    floored so that every sample carries some charge."""
    moyal = -np.log(rng.standard_normal(n) ** 2)
    return np.maximum(moyal + LANDAU_SHIFT, 0.05) / (np.euler_gamma + np.log(2) + LANDAU_SHIFT)


# ---------------------------------------------------------------- readout


def _read_plane(rng, deposits: _Deposits, readout: _Readout, plane: int):
    """Voxels of one plane: the samples summed per pixel, spread along the
    drift by the response, labelled where the ionisation itself lands, plus
    noise, zero suppressed."""
    rows, cols = readout.rows, readout.cols
    col = np.floor(readout.columns(deposits.y, deposits.z, plane)).astype(np.int64)
    row = np.floor(deposits.row).astype(np.int64)
    ok = (col >= 0) & (col < cols)
    # Per pixel: charge, charge-weighted position inside the pixel and spread.
    weights = deposits.charge[ok]
    offset = deposits.row[ok] - row[ok]
    pixel, first, order = _group(row[ok] * cols + col[ok])
    charge = np.add.reduceat(weights[order], first)
    offset = np.add.reduceat((weights * offset)[order], first) / charge
    spread = np.add.reduceat((weights * deposits.spread[ok])[order], first) / charge
    label = np.maximum.reduceat(deposits.label[ok][order], first)

    # Rows 2 away never hold LABEL_MIN_SHARE of the ionisation.
    labelled = np.zeros((_KERNEL_ROWS.size, pixel.size), bool)
    labelled[1:-1] = _row_shares(offset, np.sqrt(spread), _KERNEL_ROWS[1:-1]) >= LABEL_MIN_SHARE
    share = _row_shares(offset, np.sqrt(spread + (RESPONSE_SPREAD[plane] / readout.row_pitch) ** 2), _KERNEL_ROWS)
    # One sorted run per kernel row: the stable sort merges them.
    index = _KERNEL_ROWS[:, None] * cols + pixel
    inside = (index >= 0) & (index < rows * cols)
    index, first, order = _group(index[inside])
    charge = np.add.reduceat((charge * GAIN[plane] * share)[inside][order], first)
    label = np.maximum.reduceat(np.where(labelled, label, BACKGROUND)[inside][order], first)

    noise_rms = np.asarray(NOISE_RMS[plane])[(index // cols >= rows // 2).astype(np.int64)]
    charge = np.minimum(charge + rng.standard_normal(charge.size) * noise_rms, SATURATION[plane])
    kept = charge >= THRESHOLD
    index, charge, label = index[kept], charge[kept], label[kept]

    noise_index, noise_charge = _noise(rng, readout, plane)
    free = ~_contains(index, noise_index)
    index = np.concatenate([index, noise_index[free]])
    order = np.argsort(index, kind="stable")
    value = np.concatenate([charge, noise_charge[free]])[order].astype(np.float32)
    label = np.concatenate([label, np.full(int(free.sum()), BACKGROUND, np.uint8)])[order]
    return index[order], value, label


_KERNEL_ROWS = np.arange(-2, 3)  # rows around a pixel that its charge spreads to


def _row_shares(offset, sigma, rows):
    """Shares of a Gaussian (centre `offset` rows into the pixel, width
    `sigma` rows) that fall in the given rows around the pixel: [rows, n].
    Single precision: the tanh approximation of the normal CDF is good to
    2e-4 anyway."""
    edges = np.r_[rows, rows[-1] + 1].astype(np.float32)
    x = (edges[:, None] - offset.astype(np.float32)) / sigma.astype(np.float32)
    cdf = 0.5 * (1 + np.tanh(np.float32(0.7978845608) * (x + np.float32(0.044715) * x * x * x)))
    return np.diff(cdf, axis=0)


def _group(index):
    """Unique values of `index`, where each starts in the sorted order, and
    the sorting permutation (stable: sorted runs in the input merge fast)."""
    order = np.argsort(index, kind="stable")
    ordered = index[order]
    first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if ordered.size else np.zeros(0, np.int64)
    return ordered[first], first, order


def _noise(rng, readout: _Readout, plane: int):
    """Electronics noise above threshold on the wires, per drift volume:
    hits of Gaussian-tail amplitude, some continuing into following ticks.
    Returns sorted unique pixels and charges."""
    half = readout.rows // 2
    first_wire, n_wires = readout.first_wire[plane], readout.n_wires[plane]
    mean_length = 1 / (1 - NOISE_CONTINUATION)
    indices, charges = [], []
    for volume, rms in enumerate(NOISE_RMS[plane]):
        tail = 0.5 * math.erfc(THRESHOLD / (rms * math.sqrt(2)))
        n = rng.poisson(half * n_wires * tail / mean_length)
        length = rng.geometric(1 - NOISE_CONTINUATION, n)
        start_row = rng.integers(0, half, n) + volume * half
        col = (first_wire + rng.random(n) * n_wires).astype(np.int64)
        hit = np.repeat(np.arange(n), length)
        row = np.repeat(start_row, length) + np.arange(hit.size) - np.repeat(np.cumsum(length) - length, length)
        within = row < (volume + 1) * half
        row, hit = row[within], hit[within]
        indices.append(row * readout.cols + col[hit])
        charges.append(_gaussian_tail(rng, row.size, THRESHOLD, rms))
    index = np.concatenate(indices)
    index, first = np.unique(index, return_index=True)
    return index, np.concatenate(charges)[first]


def _gaussian_tail(rng, n, threshold, rms):
    """n draws of a normal(0, rms) above `threshold` (Marsaglia's tail method)."""
    t = threshold / rms
    out = np.empty(0)
    while out.size < n:
        x = np.sqrt(t * t - 2 * np.log1p(-rng.random(2 * n + 1)))
        out = np.concatenate([out, x[rng.random(x.size) * x < t]])
    return out[:n] * rms


def _contains(sorted_index, query):
    """Which of `query` are in the sorted array."""
    if sorted_index.size == 0:
        return np.zeros(query.size, bool)
    at = np.minimum(np.searchsorted(sorted_index, query), sorted_index.size - 1)
    return sorted_index[at] == query
