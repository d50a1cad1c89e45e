"""The only package that talks to MLflow. Callers use `from skinexp import tracking` and the names below.

- `store`: the tracking store and experiment (`prepare_store`), its UI URLs.
- `active`: the run being trained or evaluated: `run(...)` always ends it; `log_*` record into it.
- `fold_runs`: a sweep's parent and the training runs under it (fold ensembles).
- `retry`: calls to a remote server retried while it restarts (`tracking.retry_seconds`); `auth`: its users.
- `models`: the `segmenter` pyfunc, dataset lineage (`log_input`), the model registry and `models:/` URIs.
- `registry`: other runs: sweep parents and children, failed jobs, runs read back to evaluate, resume or rerun.
"""
from skinexp.tracking.active import (
    create_once,
    flatten,
    log_artifact,
    log_bytes,
    log_config,
    log_figure,
    log_image,
    log_keras_model,
    log_metrics,
    log_params,
    log_text,
    process_tags,
    run,
    set_tags,
    source_tags,
)
from skinexp.tracking.comparisons import (
    COMPARISON_TAG,
    artifact_bytes,
    end_run,
    experiment_runs,
    log_files,
    start_comparison_run,
    sweep_runs,
)
from skinexp.tracking.fold_runs import is_sweep, training_children
from skinexp.tracking.models import (
    SEGMENTER,
    dataset_source,
    local_model,
    log_dataset_inputs,
    log_segmenter,
    model_version,
    parse_model_uri,
    register_run,
    run_model,
    serving_uri,
)
from skinexp.tracking.retry import server_gone
from skinexp.tracking.runs import (
    PARENT_RUN_ENV,
    SWEEP_TAG,
    child_runs,
    download,
    end_parent_run,
    find_sweep,
    finish_parent_run,
    get_run,
    log_missing_epoch,
    log_run_tag,
    mark_killed,
    metric_histories,
    process_alive,
    record_failed_run,
    run_config,
    running_runs,
    stale_runs,
    start_parent_run,
)
from skinexp.tracking.store import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    TrackingError,
    client,
    open_existing_store,
    open_store_uri,
    prepare_store,
    resolve_uri,
    run_page_url,
    runs_page_url,
)
