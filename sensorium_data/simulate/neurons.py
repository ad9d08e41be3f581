"""A population of model V1 neurons: receptive fields laid out along the cortex, and tuning.

Each neuron is a spatio-temporal energy unit (Adelson & Bergen 1985) with a Gabor receptive
field: its spatial pair (even, odd Gabor) times a temporal pair (two biphasic kernels in
temporal quadrature) gives two oriented space-time filters, L1 and L2. A *simple* cell
rectifies one phase of them, a *complex* cell takes their energy sqrt(L1^2 + L2^2); the
mixing weight ``complexity`` runs between. ``direction`` weights the space-time inseparable
part, so 0 is a separable (direction-blind) filter and 1 a fully direction-selective one.
The drive is divided by the local contrast (normalization, Heeger 1992), thresholded and
raised to a power (Priebe & Ferster's power law), then multiplied by gains from running and
pupil size and by a gain fluctuation shared across the population.

Receptive-field centres follow the cortical (x, y) coordinates through a linear retinotopic
map with scatter, so neighbouring neurons see neighbouring parts of the screen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sensorium_data.tree.formats import FPS

HEIGHT, WIDTH = 36, 64
KERNEL_FRAMES = 15
"""Temporal kernels span 0.5 s at 30 Hz."""


@dataclass(frozen=True)
class NeuronConfig:
    """How the population's parameters are drawn (lengths in screen pixels, ~1.9 deg each)."""

    microns_per_pixel: float = 28.0
    """Retinotopic magnification: cortical distance per screen pixel of RF displacement."""
    map_centre: tuple[float, float] = (17.0, 30.0)
    """Screen position (row, col) of the centre of the recorded cortical patch."""
    map_scatter: float = 1.5
    """Standard deviation of RF centres around the retinotopic map, pixels."""
    rf_sigma: tuple[float, float] = (2.6, 0.25)
    """Gaussian envelope width: median, log-std (mouse V1 RFs are ~10-20 degrees wide)."""
    rf_aspect: tuple[float, float] = (1.0, 1.8)
    """Elongation along the bars: uniform range."""
    rf_period: tuple[float, float] = (11.0, 0.35)
    """Spatial period of the carrier: median, log-std (~0.05 cycles per degree)."""
    complex_fraction: float = 0.55
    """Share of complex cells (Niell & Stryker 2008 report about half of mouse V1 cells)."""
    direction_fraction: float = 0.3
    """Share of strongly direction-selective cells; the rest are weakly selective at most."""
    temporal_classes: tuple[tuple[float, float], ...] = ((70.0, 3.0), (100.0, 1.5))
    """Temporal kernel pairs (peak latency in ms, preferred frequency in Hz): a transient
    and a sustained class (mouse V1 prefers 1-4 Hz; Niell & Stryker 2008)."""
    normalization: tuple[float, float] = (0.5, 2.0)
    """Weight of the local contrast in the divisive normalization: uniform range."""
    normalization_sigma: float = 5.0
    """Spatial extent of the normalization pool, pixels."""
    threshold_quantile: tuple[float, float] = (0.3, 0.7)
    """Threshold as a quantile of each neuron's drive on natural movies: uniform range."""
    exponent: tuple[float, float] = (1.3, 2.0)
    """Power of the output nonlinearity: uniform range."""
    saturation: float = 60.0
    """The stimulus-driven rate saturates at this multiple of its mean on natural movies."""
    spontaneous: tuple[float, float] = (0.04, 0.15)
    """Spontaneous rate as a share of the mean rate: uniform range."""
    events_per_scan: tuple[float, float] = (0.1, 0.5)
    """Mean rate in events per 8 Hz scan on natural movies: median, log-std."""
    running_gain: tuple[float, float] = (0.5, 0.45)
    """Log-gain at full running: mean, std (mostly up: Niell & Stryker 2010)."""
    pupil_gain: tuple[float, float] = (0.12, 0.15)
    """Log-gain per 10% of pupil dilation: mean, std (arousal: Reimer et al. 2014)."""
    running_drive_fraction: float = 0.2
    """Share of neurons with an additive, stimulus-independent running response (Saleem 2013)."""
    shared_gain: tuple[float, float] = (0.35, 0.2)
    """Coupling to the shared gain fluctuation (log-gain per unit): mean, std, kept >= 0."""
    private_gain: float = 0.4
    """Std of each neuron's own log-gain fluctuation (super-Poisson variability, Goris 2014)."""
    gain_noise_tau: float = 1.0
    """Time constant of the gain fluctuations, seconds."""
    amplitude_sigma: float = 0.8
    """Log-normal spread of single event amplitudes (calcium events vary in size)."""
    amplitude_scale: tuple[float, float] = (16.0, 0.5)
    """Per-neuron event amplitude: median, log-std (brightness and expression differ)."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Population:
    """Parameters of every neuron (one entry per neuron) and its receptive-field filters."""

    rf_row: np.ndarray
    rf_col: np.ndarray
    rf_sigma: np.ndarray
    rf_aspect: np.ndarray
    rf_period: np.ndarray
    orientation: np.ndarray
    """Carrier direction (radians, 0 = rightwards, pi/2 = up); DS cells prefer motion along it."""
    phase: np.ndarray
    complexity: np.ndarray
    direction: np.ndarray
    temporal_class: np.ndarray
    normalization: np.ndarray
    threshold_quantile: np.ndarray
    exponent: np.ndarray
    spontaneous: np.ndarray
    events_per_scan: np.ndarray
    running_gain: np.ndarray
    pupil_gain: np.ndarray
    running_drive: np.ndarray
    shared_gain: np.ndarray
    amplitude: np.ndarray
    threshold: np.ndarray | None = None
    """Set by calibration (:meth:`Twin.calibrate`): drive threshold, the scale that makes the
    thresholded drive 1 on average, and the factor that makes the mean rate events_per_scan."""
    scale: np.ndarray | None = None
    rate_scale: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.rf_row)

    def subset(self, index: np.ndarray) -> Population:
        """The neurons at ``index`` (so a scaled-down recording keeps its neurons' truth)."""
        fields = {k: None if v is None else np.asarray(v)[index] for k, v in vars(self).items()}
        return Population(**fields)  # type: ignore[arg-type]

    def filters(self) -> tuple[np.ndarray, np.ndarray]:
        """Even and odd Gabor filters, each (HEIGHT * WIDTH, n) float32, unit norm per neuron."""
        even = np.empty((HEIGHT * WIDTH, self.n), np.float32)
        odd = np.empty((HEIGHT * WIDTH, self.n), np.float32)
        for start in range(0, self.n, 1024):  # in chunks: the temporaries are pixels x chunk
            part = slice(start, start + 1024)
            even[:, part], odd[:, part] = self._gabors(part)
        return even, odd

    def _gabors(self, part: slice) -> tuple[np.ndarray, np.ndarray]:
        def param(name: str) -> np.ndarray:
            return np.asarray(getattr(self, name)[part], dtype=np.float32)[None]

        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        dy = yy.reshape(-1, 1) - param("rf_row")
        dx = xx.reshape(-1, 1) - param("rf_col")
        c, s = np.cos(param("orientation")), np.sin(param("orientation"))
        along = dx * c - dy * s  # along the carrier direction (up is -row)
        across = dx * s + dy * c
        sigma = param("rf_sigma")
        envelope = np.exp(
            -(along**2) / (2 * sigma**2) - across**2 / (2 * (sigma * param("rf_aspect")) ** 2)
        )
        # exact zeros far from the centre: tiny values would be denormal floats (slow)
        envelope[envelope < 1e-6] = 0.0
        arg = np.float32(2 * np.pi) * along / param("rf_period")
        even = envelope * np.cos(arg)
        odd = envelope * np.sin(arg)
        # no response to uniform luminance: remove the even filter's DC under its envelope
        even -= envelope * (even.sum(axis=0) / envelope.sum(axis=0))[None]
        even /= np.linalg.norm(even, axis=0, keepdims=True) + np.float32(1e-8)
        odd /= np.linalg.norm(odd, axis=0, keepdims=True) + np.float32(1e-8)
        return even, odd

    def to_table(self, unit_ids: np.ndarray) -> dict[str, list[float] | list[int]]:
        """The ground truth of every neuron, column by column (for ``meta/simulation``)."""
        columns: dict[str, list[float] | list[int]] = {"unit_id": [int(u) for u in unit_ids]}
        for name, value in vars(self).items():
            if value is None:
                continue
            arr = np.asarray(value)
            if arr.dtype.kind in "iu":
                columns[name] = [int(v) for v in arr]
            else:
                columns[name] = [float(f"{v:.6g}") for v in arr]
        return columns


def temporal_kernels(latency_ms: float, hz: float) -> tuple[np.ndarray, np.ndarray]:
    """A biphasic temporal pair in quadrature: a gamma envelope peaking at ``latency_ms``
    times a cosine and a sine of ``hz`` (the pair's preferred temporal frequency).

    Returns two (KERNEL_FRAMES,) arrays, unit norm, indexed by lag in frames. Their
    combination with an even/odd spatial pair gives direction selectivity (Adelson & Bergen
    1985; Watson & Ahumada 1985).
    """
    t = (np.arange(KERNEL_FRAMES) + 0.5) / FPS  # seconds, frame centres
    tau = latency_ms / 2000.0  # (t / tau)^2 exp(-t / tau) peaks at 2 tau
    envelope = (t / tau) ** 2 * np.exp(-t / tau)
    even = envelope * np.cos(2 * np.pi * hz * (t - 2 * tau))
    odd = envelope * np.sin(2 * np.pi * hz * (t - 2 * tau))
    return even / np.linalg.norm(even), odd / np.linalg.norm(odd)


def make_population(
    coordinates: np.ndarray, rng: np.random.Generator, config: NeuronConfig
) -> Population:
    """Draw the parameters of one neuron per row of ``coordinates`` (x, y, z microns)."""
    c = config
    n = len(coordinates)
    xy = np.asarray(coordinates, dtype=np.float64)[:, :2]
    xy = xy - xy.mean(axis=0) if n else xy
    # retinotopy: cortical x -> azimuth, cortical y -> elevation, with a small random rotation
    angle = rng.normal(0, 0.3)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pos = xy @ rot.T / c.microns_per_pixel
    rf_col = c.map_centre[1] + pos[:, 0] + rng.normal(0, c.map_scatter, n)
    rf_row = c.map_centre[0] - pos[:, 1] + rng.normal(0, c.map_scatter, n)
    is_complex = rng.random(n) < c.complex_fraction
    complexity = np.where(is_complex, rng.beta(6, 1.5, n), rng.beta(1.2, 8, n))
    is_ds = rng.random(n) < c.direction_fraction
    direction = np.where(is_ds, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.25, n))
    shared = np.maximum(rng.normal(*c.shared_gain, n), 0.0)
    return Population(
        rf_row=np.clip(rf_row, 1, HEIGHT - 2),
        rf_col=np.clip(rf_col, 1, WIDTH - 2),
        rf_sigma=c.rf_sigma[0] * np.exp(c.rf_sigma[1] * rng.standard_normal(n)),
        rf_aspect=rng.uniform(*c.rf_aspect, n),
        rf_period=c.rf_period[0] * np.exp(c.rf_period[1] * rng.standard_normal(n)),
        orientation=rng.uniform(0, 2 * np.pi, n),
        phase=rng.uniform(0, 2 * np.pi, n),
        complexity=complexity,
        direction=direction,
        temporal_class=rng.integers(0, len(c.temporal_classes), n),
        normalization=rng.uniform(*c.normalization, n),
        threshold_quantile=rng.uniform(*c.threshold_quantile, n),
        exponent=rng.uniform(*c.exponent, n),
        spontaneous=rng.uniform(*c.spontaneous, n),
        events_per_scan=c.events_per_scan[0]
        * np.exp(c.events_per_scan[1] * rng.standard_normal(n)),
        running_gain=rng.normal(*c.running_gain, n),
        pupil_gain=rng.normal(*c.pupil_gain, n),
        running_drive=np.where(rng.random(n) < c.running_drive_fraction, rng.uniform(0.5, 2, n), 0),
        shared_gain=shared,
        amplitude=c.amplitude_scale[0] * np.exp(c.amplitude_scale[1] * rng.standard_normal(n)),
    )
