"""Train: choose dataset, representation and model settings; train in the background with live
loss curves and a stop button; the saved model joins the model list with its evaluation."""

import streamlit as st

from ljvae_core.artifacts import list_models
from ljvae_core.hosted import LimitError, check_training
from ljvae_core.training import TrainingError, TrainSettings, train_and_save
from ljvae_ui.charts import training_chart
from ljvae_ui.state import SELECTED_MODEL, job_blocked, models_table, pick_dataset, start_job

JOB = "training_job"
LOG = "training_log"
SHOWN = "training_job_shown"
REPRESENTATIONS = {
    "distances": "distance matrix → VAE (MDS or Conv2D encoder, Euclidean output)",
    "coords": "sorted coordinates → dense VAE (the original study's network)",
    "voxels": "voxel density grid → Conv3D VAE (Conv2D for 2D)",
}

st.title("Train")
st.caption("Variational autoencoders on Monte Carlo configurations; the validation set is made "
           "of whole held-out chains.")

summary = pick_dataset()
if summary is None:
    st.info("No dataset yet: make one on the Simulate page first.")
    st.page_link("app_pages/simulate.py", label="Simulate", icon="🎲")
    st.stop()


def hard_core_widgets(enabled: bool) -> tuple[int, float]:
    """(repel steps, repel distance) of the coordinates decoder's hard core."""
    steps = st.number_input(
        "Hard-core steps (0: off)", 0, 20, TrainSettings.repel_steps, key="repel_steps",
        disabled=not enabled,
        help="The decoded coordinates end with this many steps pushing pairs closer than the "
             "contact distance apart; the decoder learns through them. Without them, decoded "
             "samples almost always hold an overlapping pair.")
    distance = st.number_input(
        "Contact distance (σ)", 0.5, 1.5, TrainSettings.repel_distance, step=0.01,
        key="repel_distance", disabled=not enabled or steps == 0)
    return int(steps), float(distance)


def settings_from_widgets() -> tuple[TrainSettings, str | None]:
    left, mid, right = st.columns(3)
    with left:
        rep = st.selectbox("Representation", list(REPRESENTATIONS), key="representation",
                           format_func=REPRESENTATIONS.__getitem__)
        latent = st.number_input("Latent size", 1, 512, 64 if rep == "distances" else 8,
                                 key="latent_dim")
        conditional = st.checkbox("Conditional on (γ, T)", key="conditional",
                                  help="Feeds γ and T to encoder and decoder, so the decoder "
                                       "can generate at a chosen γ.")
        extra = {}
        decoder = "direct"
        match_every = 0
        encoder = TrainSettings.distance_encoder
        coordinate_weight = TrainSettings.coordinate_weight
        repel = (TrainSettings.repel_steps, TrainSettings.repel_distance)
        log_heights = TrainSettings.log_heights
        if rep == "distances":
            decoder = st.radio("Distance decoder", ("coordinates", "direct"), horizontal=True,
                               key="distance_decoder",
                               help="coordinates: the decoder outputs coordinates and their "
                                    "distances, always a valid Euclidean matrix; direct: it "
                                    "outputs the matrix (made symmetric).")
            encoders = ("mds", "rows", "conv")
            encoder = st.radio("Distance encoder", encoders, horizontal=True,
                               index=encoders.index(TrainSettings.distance_encoder),
                               key="distance_encoder",
                               help="mds: classical MDS turns each matrix back into its "
                                    "shape, put in one frame (turned, shifted and ordered "
                                    "onto the training set's mean shape), then a dense "
                                    "network (needs the height channels and the coordinates "
                                    "decoder); rows: kernels spanning whole rows, so that "
                                    "each particle is first described by all its distances; "
                                    "conv: 3x3 convolutions.")
            coordinate_weight = st.number_input(
                "Coordinate loss weight", 0.0, 1000.0, TrainSettings.coordinate_weight,
                key="coordinate_weight", disabled=decoder != "coordinates",
                help="Weight of a loss on the decoded coordinates themselves, next to their "
                     "distances: scored through distances alone, decoded shapes settle into "
                     "folded or mirrored ones.")
            repel = hard_core_widgets(decoder == "coordinates")
            log_heights = st.checkbox(
                "Decode log-heights", TrainSettings.log_heights, key="log_heights",
                disabled=decoder != "coordinates",
                help="The decoder emits the logarithm of each height: decoded particles stay "
                     "above the floor, and a barometric profile's scale is one shift.")
            extra["heights"] = st.checkbox(
                "Height channels", True, key="distance_heights",
                help="Adds each particle's height to the matrix (two more channels): a "
                     "distance matrix alone has no up, so it cannot tell gravity's layers "
                     "apart or be stood upright again.")
            match_every = st.number_input(
                "Match particle orders every K epochs (0: never)", 0, 100,
                TrainSettings.match_every, key="match_every", disabled=encoder == "mds",
                help="Between stretches of K epochs, each target's particles are put in the "
                     "order that best matches the decoder's output, so the decoder need not "
                     "learn the input order's jumps (two particles swapping distance from the "
                     "origin). The mds encoder's frame orders them itself.")
        if rep == "voxels":
            extra["n_cells"] = st.select_slider("Voxels per axis", [8, 16, 24, 32], 16,
                                                key="n_cells")
            extra["smearing"] = st.number_input("Gaussian smearing w (σ)", 0.0, 2.0, 0.0,
                                                step=0.05, key="smearing")
    with mid:
        beta = st.number_input("β (KL weight)", 0.0, 100.0, 1.0, step=0.1, key="beta")
        warmup = st.number_input("KL warm-up epochs", 0, 500, 0, key="warmup")
        physics = st.number_input("Physics loss weight λ_E", 0.0, 1000.0, 0.0, step=1.0,
                                  key="physics_weight", disabled=rep == "voxels",
                                  help="Penalizes, during training, the LJ energy of decoded "
                                       "configurations above the highest energy seen in "
                                       "training and their overflow out of the box.")
        prior_physics = st.number_input(
            "Prior physics weight", 0.0, 10000.0, TrainSettings.prior_physics_weight,
            step=10.0, key="prior_physics_weight", disabled=rep == "voxels",
            help="After training, the generation prior (a Gaussian mixture over the latent "
                 "means) is fitted with the same physics penalty on its decoded samples, so "
                 "generation avoids latent regions that decode to overlapping or too wide "
                 "configurations. The decoder, hence every reconstruction, is left as "
                 "trained. 0: the plain mixture.")
        state = st.number_input(
            "State head weight", 0.0, 1000.0, TrainSettings.state_weight, step=1.0,
            key="state_weight", disabled=conditional,
            help="Weight of a linear head reading (γ, T) off the latent, so that the latent "
                 "carries the state point where a straight line reads it (the Latent page's "
                 "γ probe). Unconditional models only; 0: the latent organizes itself.")
    with right:
        epochs = st.number_input("Epochs", 1, 2000, 40, key="epochs")
        batch = st.number_input("Batch size", 1, 4096, 64, key="batch_size")
        seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed")
        name = st.text_input("Model name (optional)", key="model_name")
    settings = TrainSettings(
        representation=rep, latent_dim=int(latent), beta=float(beta), warmup_epochs=int(warmup),
        physics_weight=0.0 if rep == "voxels" else float(physics), conditional=conditional,
        epochs=int(epochs), batch_size=int(batch), seed=int(seed), representation_params=extra,
        distance_decoder=decoder, match_every=int(match_every), distance_encoder=encoder,
        coordinate_weight=float(coordinate_weight), repel_steps=repel[0],
        repel_distance=repel[1], log_heights=log_heights,
        state_weight=0.0 if conditional else float(state),
        prior_physics_weight=0.0 if rep == "voxels" else float(prior_physics))
    settings.validate()
    return settings, name.strip() or None


@st.fragment(run_every=1.0)
def job_panel():
    job = st.session_state.get(JOB)
    log = st.session_state.get(LOG) or []
    if job is None:
        return
    if job.running:
        st.progress(job.fraction, text=f"{job.message} ({job.elapsed:.0f} s)")
        if st.button("Stop training (keep the model so far)", key="stop"):
            job.cancel()
    if log:
        st.altair_chart(training_chart(list(log)), width="content")
    if job.running:
        return
    if job.status == "done":
        if st.session_state.get(SHOWN) is not job:
            # The model list below was drawn while the job ran: redraw the page once.
            st.session_state[SHOWN] = job
            st.session_state[SELECTED_MODEL] = job.result
            st.rerun(scope="app")
        st.success(f"Saved model **{job.result}** in {job.elapsed:.0f} s (evaluated on held-out "
                   "chains, below).")
        st.page_link("app_pages/reconstruct.py", label="Reconstruct and generate with it",
                     icon="🔁")
    else:
        st.error(f"Training failed: {job.error}")


try:
    settings, name = settings_from_widgets()
except TrainingError as err:
    st.error(f"Please fix the settings: {err}.")
    settings = None

limits = st.session_state.get("hosted_limits")
if settings is not None and limits is not None:
    try:
        check_training(settings, summary["samples"], limits)
    except LimitError as err:
        st.error(f"Not allowed here: {err}.")
        settings = None
blocked = job_blocked(JOB)
if blocked and blocked != "this job is still running":
    st.caption(f"Training is paused: {blocked}.")
if st.button("Train", type="primary", disabled=settings is None or blocked is not None,
             key="train"):
    log = st.session_state[LOG] = []
    if start_job(JOB, train_and_save, summary["name"], settings, name, epoch_log=log,
                 label="train"):
        st.rerun()
job_panel()

st.subheader("Models")
models = list_models()
if models:
    st.dataframe(models_table(models), hide_index=True, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%.3g")
        for c in ("RMSD median (σ)", "valid (raw)", "valid (relaxed)",
                  "U/N W1 (quenched, vs quenched MC)")})
else:
    st.caption("No model yet.")
