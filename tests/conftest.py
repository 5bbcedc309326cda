"""Shared fixtures: one tiny trained run for the whole session, and a helper that calls the CLI in-process."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Every command the tests run computes with a fixed thread count: the CLI's default count adapts to the
# machine's load (insertgen/core/threads.py), and tests that compare two runs need the same float reductions.
# tests/test_threads.py removes it where it tests the adaptive default.
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                             else os.cpu_count() or 1))

# A FlexMDM run on star-easy small enough to train in a few seconds on a 2-core CPU. Checkpoints are
# written at steps 2 and 4, so the run directory also holds checkpoint.prev.safetensors.
TINY_TRAIN_STEPS = 4
TINY_TRAIN_ARGS = [
    "train", "--task", "star-easy", "--model", "flexmdm", "--steps", str(TINY_TRAIN_STEPS),
    "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8",
    "--set", "eval_every=0", "--set", "checkpoint_every=2", "--quiet",
]


# the test plugin package (a model family and a task from outside insertgen; tests/test_plugins.py)
PLUGINS = Path(__file__).resolve().parent / "plugins"


def call_main(args) -> int:
    """Run ``insertgen.apps.cli.main`` in-process; returns the exit code (0 when it returns normally)."""
    from insertgen.apps.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return 0 if e.code is None else e.code
    return 0


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory trained once per session with ``TINY_TRAIN_ARGS`` (star-easy, flexmdm, 4 steps).

    Shared by every test: treat it as read-only. Use ``tiny_run_copy`` for anything that writes into
    the run directory (eval, resume, samples.jsonl, ...).
    """
    out = tmp_path_factory.mktemp("tiny-run") / "run"
    code = call_main([*TINY_TRAIN_ARGS, "--out", out])
    if code != 0:
        pytest.fail(f"training the tiny run failed with exit code {code}")
    return out


# A reproduce grid of two models on star-easy, one seed, tiny backbones trained for one second each, the
# two cells in two worker processes.
TINY_GRID_ARGS = [
    "reproduce", "--tasks", "star-easy", "--models", "flexmdm,arm", "--seeds", "0", "--budget", "1s",
    "--eval-n", "12", "--sampler-steps", "4", "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2",
    "--set", "batch_size=8", "--jobs", "2",
]


@pytest.fixture(scope="session")
def tiny_grid(tmp_path_factory) -> Path:
    """A reproduce directory made once per session with ``TINY_GRID_ARGS``; read-only for tests."""
    out = tmp_path_factory.mktemp("tiny-grid") / "grid"
    code = call_main([*TINY_GRID_ARGS, "--out", out])
    if code != 0:
        pytest.fail(f"the tiny reproduce grid failed with exit code {code}")
    return out


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of ``tiny_run`` that a test may modify."""
    dst = tmp_path / "run-copy"
    shutil.copytree(tiny_run, dst)
    return dst


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> (exit_code, stdout, stderr)``: the CLI called in-process, output captured."""

    def run(*args):
        capsys.readouterr()  # drop anything printed before this call
        code = call_main(args)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


# ----- the two tiers -----
# The slow tier, selected with `-m slow` (pyproject's default `-m 'not slow'` leaves it out; `scripts/dev.py test`,
# the README's and CI's command, runs both tiers; `scripts/dev.py test --fast` the default one only). It holds
# every test that took 1.5 s or more in `pytest -m "slow or not slow" --durations=0` on one core of this 2-core
# CPU (2026-12-07: full demos, torchrun, kill -9 trials, busy benchmarks, grids, benchmark smallest runs, the
# browser, model x task matrices past their quick members), and every test of the tiny reproduce grid
# (`--jobs 2`). An entry names a test (all its parameters) or one parametrisation (a prefix of its id).
SLOW_TESTS = (
    "test_baselines.py::test_arm_overfits_a_handful_of_examples",
    "test_bench.py::test_bench_cli_prints_one_json_object_per_measurement",
    "test_bench.py::test_compiled_trunks_train_like_eager_ones",
    "test_cli.py::test_baseline_train_sample_eval_score[mdm-elbo]",
    "test_cli.py::test_insertion_process_train_eval_score_and_analysis[ao-ip]",
    "test_cli.py::test_subprocess_bad_prompt_exit_code",
    "test_cli.py::test_subprocess_corrupt_checkpoint_exit_code",
    "test_cli.py::test_train_writes_config_checkpoint_and_metrics",
    "test_demo.py::test_a_shipped_molecule_model_writes_a_valid_molecule_on_a_fixed_seed[smiles]",
    "test_demo.py::test_demo_reproduces_the_documented_figures_and_writes_usable_runs",
    "test_demo.py::test_demo_train_runs_end_to_end",
    "test_demo.py::test_maze_demo_reproduces_its_documented_figures[maze-braided-medium]",
    "test_demo.py::test_maze_demo_reproduces_its_documented_figures[maze-perfect-easy]",
    "test_demo.py::test_maze_demo_shows_plans_side_by_side_and_a_plan_growing",
    "test_demo.py::test_molecule_demo_reproduces_its_documented_figures[fragment-linker]",
    "test_demo.py::test_molecule_demo_reproduces_its_documented_figures[fragment-motif]",
    "test_demo.py::test_molecule_demo_reproduces_its_documented_figures[fragment-scaffold]",
    "test_demo.py::test_molecule_demo_reproduces_its_documented_figures[fragment-superstructure]",
    "test_demo.py::test_molecule_demo_reproduces_its_documented_figures[safe]",
    "test_demo.py::test_molecule_demo_reproduces_its_documented_figures[smiles]",
    "test_demo.py::test_shipped_model_keeps_its_measured_quality[flexmdm-777-0.94-0.9]",
    "test_demo.py::test_shipped_model_keeps_its_measured_quality[loflexmdm-778-0.925-0.85]",
    "test_demo.py::test_shipped_model_keeps_its_measured_quality[mdm-779-0.97-0.93]",
    "test_demo.py::test_star_medium_demo_reproduces_its_documented_figures",
    "test_distributed.py::test_cli_under_torchrun_writes_one_run_and_resumes_exactly",
    "test_distributed.py::test_two_ranks_match_each_other_and_one_process_with_the_same_global_batch",
    "test_fault_tolerance.py::test_a_checkpoint_missing_between_the_two_renames_resumes_from_the_previous_one",
    "test_fault_tolerance.py::test_a_pickled_checkpoint_from_elsewhere_is_refused_without_running_its_code",
    "test_fault_tolerance.py::test_a_run_killed_before_its_first_checkpoint_starts_again_identically",
    "test_fault_tolerance.py::test_checkpoint_for_another_model_or_vocabulary_is_refused[model-ip-holds",
    "test_fault_tolerance.py::test_checkpoint_for_another_model_or_vocabulary_is_refused[vocab-0123456789abcdef-another",
    "test_fault_tolerance.py::test_corrupt_checkpoint_is_refused_and_the_previous_one_used_on_request",
    "test_fault_tolerance.py::test_kill_9_at_a_random_step_then_resume_is_bit_identical",
    "test_shipped_outputs.py::test_a_shipped_model_writes_its_recorded_outputs",
    "test_fault_tolerance.py::test_nan_steps_are_skipped_on_request_until_too_many_in_a_row",
    "test_formats.py::test_every_documented_prompt_is_accepted_by_sample",
    "test_fragments.py::test_benchmark_command_writes_and_checks",
    "test_fragments.py::test_benchmark_file_is_reproducible_byte_for_byte",
    "test_fragments.py::test_fine_tuning_a_de_novo_safe_run_on_a_fragment_task",
    "test_ip.py::test_trainer_tells_the_model_its_step",
    "test_learning_speed.py::test_a_run_trained_elsewhere_is_continued_from_its_step",
    "test_learning_speed.py::test_ip_points_record_the_posterior_order",
    "test_learning_speed.py::test_probes_and_failure_kinds_read_the_node_format[flexmdm]",
    "test_learning_speed.py::test_smallest_ladder_reports_time_to_solve",
    "test_learning_speed.py::test_smallest_learning_run_writes_its_documented_keys_and_resumes",
    "test_learning_speed.py::test_stop_at_needs_two_points_in_a_row_and_a_fraction",
    "test_likelihood.py::test_flexmdm_elbo_lies_below_the_probability_its_sampler_gives",
    "test_loflexmdm.py::test_rloo_plus_pathwise_estimator_is_unbiased",
    "test_loflexmdm.py::test_short_training_lowers_the_loss_and_moves_the_schedules",
    "test_maze.py::test_every_model_trains_samples_and_evaluates_on_a_maze[arm]",
    "test_maze.py::test_every_model_trains_samples_and_evaluates_on_a_maze[loflexmdm]",
    "test_maze.py::test_every_model_trains_samples_and_evaluates_on_a_maze[mdm]",
    "test_maze_learning.py::test_smallest_maze_ladder_reports_time_to_success",
    "test_memory.py::test_the_evaluation_memory_benchmark_writes_its_readings",
    "test_memory.py::test_the_evaluation_heap_benchmark_writes_its_readings",
    "test_maze_learning.py::test_smallest_maze_run_writes_its_documented_keys_and_continues",
    "test_maze_learning.py::test_the_decoding_sweep_measures_each_distinct_sampler_once",
    "test_maze_learning.py::test_the_maze_benchmark_refuses_other_tasks_and_bad_budgets",
    "test_model_family.py::test_a_registered_toy_family_trains_samples_evaluates_scores_and_reproduces",
    "test_molecule_progress.py::test_benchmark_reports_each_fragment_task_of_the_mixture",
    "test_molecule_progress.py::test_benchmark_smallest_run_writes_its_keys[safe-flexmdm]",
    "test_molecule_progress.py::test_benchmark_smallest_run_writes_its_keys[smiles-ip]",
    "test_molecules.py::test_fcd_of_a_set_against_itself_is_zero_and_grows_for_another_distribution",
    "test_report.py::test_grid_report_renders",
    "test_report.py::test_run_report_renders",
    "test_reproduce.py::test_docs_section_is_replaced_in_place",
    "test_reproduce.py::test_rerun_skips_done_cells_and_evaluates_trained_ones",
    "test_reproduce.py::test_rerun_with_other_settings_is_refused",
    "test_reproduce.py::test_step_budgets",
    "test_reproduce.py::test_tiny_grid_writes_every_file",
    "test_star_sizes.py::test_a_curriculum_run_is_counted_at_its_tasks_step_cost",
    "test_star_sizes.py::test_a_curriculum_trains_on_the_smaller_rung_first_and_resumes_bit_exact",
    "test_star_sizes.py::test_every_size_keeps_the_invariants[tiny-sizes4]",
    "test_star_sizes.py::test_paper_levels_are_unchanged_byte_for_byte[hard]",
    "test_star_sizes.py::test_paper_levels_are_unchanged_byte_for_byte[medium]",
    "test_star_sizes.py::test_training_on_fresh_data_resumes_bit_exact",
    "test_threads.py::test_busy_benchmark_smallest_configuration",
    "test_threads.py::test_reproduce_workers_load_torch_under_the_policy",
    "test_threads.py::test_the_policy_is_in_the_environment_when_torch_loads[None-expected0-insertgen]",
    "test_threads.py::test_the_policy_is_in_the_environment_when_torch_loads[None-expected0-python",
    "test_threads.py::test_the_policy_is_in_the_environment_when_torch_loads[passive-expected1-insertgen]",
    "test_threads.py::test_the_policy_is_in_the_environment_when_torch_loads[passive-expected1-python",
    "test_threads.py::test_the_users_settings_win[user0-expected0]",
    "test_threads.py::test_the_users_settings_win[user1-expected1]",
    "test_threads.py::test_the_users_settings_win[user2-expected2]",
    "test_threads.py::test_the_users_settings_win[user3-expected3]",
    "test_threads.py::test_the_users_settings_win[user4-expected4]",
    "test_train.py::test_loss_decreases_when_overfitting_a_few_examples",
    "test_train.py::test_resume_is_bit_exact",
    "test_train.py::test_warm_start_across_families_renames_the_trunk",
    "test_train.py::test_warm_start_copies_matching_weights_and_refuses_mismatches",
    "test_sequences.py::test_every_family_trains_and_samples_on_a_file[pair-flexmdm]",
    "test_sequences.py::test_every_family_trains_and_samples_on_a_file[pair-loflexmdm]",
    "test_sequences.py::test_every_family_trains_and_samples_on_a_file[pair-ip]",
    "test_sequences.py::test_every_family_trains_and_samples_on_a_file[pair-ao-ip]",
    "test_sequences.py::test_every_family_trains_and_samples_on_a_file[pair-mdm]",
    "test_sequences.py::test_every_family_trains_and_samples_on_a_file[text-flexmdm]",
    "test_sequences.py::test_every_family_trains_and_samples_on_a_file[text-loflexmdm]",
    "test_sequences.py::test_every_family_trains_and_samples_on_a_file[text-ip]",
    "test_sequences.py::test_every_family_trains_and_samples_on_a_file[text-ao-ip]",
    "test_sequences.py::test_every_family_trains_and_samples_on_a_file[text-arm]",
    "test_sequences.py::test_every_family_trains_and_samples_on_a_file[text-mdm]",
    "test_plugins.py::test_an_installed_family_and_task_run_through_every_command",
    "test_plugins.py::test_reproduce_workers_and_torchrun_ranks_find_the_plugin",
    "test_plugins.py::test_a_plugin_that_cannot_be_imported_is_named",
    "test_api.py::test_train_takes_a_task_object_a_file_an_unconditional_list_and_resumes",
    "test_fuzz.py::test_run_config_reader",
    "test_fuzz.py::test_metrics_reader_on_resume",
    "test_readonly.py::test_the_commands_work_as_another_user_from_a_checkout_it_cannot_write",
    "test_readonly.py::test_a_molecule_task_without_a_writable_cache_names_the_variable",
    "test_disk_faults.py::test_a_failed_write_stops_the_run_naming_it_and_a_resume_loses_nothing[28-metrics-metrics.jsonl]",
    "test_disk_faults.py::test_a_failed_write_stops_the_run_naming_it_and_a_resume_loses_nothing[28-text-metrics.jsonl]",
    "test_disk_faults.py::test_a_failed_write_stops_the_run_naming_it_and_a_resume_loses_nothing[28-plot-training.png]",
    "test_disk_faults.py::test_a_failed_write_stops_the_run_naming_it_and_a_resume_loses_nothing[5-checkpoint-checkpoint.safetensors]",
    "test_disk_faults.py::test_a_failed_write_stops_the_run_naming_it_and_a_resume_loses_nothing[5-metrics-metrics.jsonl]",
    "test_disk_faults.py::test_a_failed_write_stops_the_run_naming_it_and_a_resume_loses_nothing[5-text-metrics.jsonl]",
    "test_disk_faults.py::test_a_failed_write_stops_the_run_naming_it_and_a_resume_loses_nothing[5-plot-training.png]",
)


def _is_slow(nodeid: str) -> bool:
    nodeid = nodeid.removeprefix("tests/")
    return any(nodeid == entry or nodeid.startswith(entry + "[") or ("[" in entry and nodeid.startswith(entry))
               for entry in SLOW_TESTS)


@pytest.hookimpl(tryfirst=True)  # before the -m selection reads the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_slow(item.nodeid):
            item.add_marker(pytest.mark.slow)
