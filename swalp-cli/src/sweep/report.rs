//! A sweep's report: the paper's table, one row per grid point, with the
//! SGD and SWA test errors as mean ± sample standard deviation over the
//! seeds that finished, and the test error against epoch per grid point
//! (`curves.svg`).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::{run_state, Plan, RunState, SweepError};
use crate::experiment::observe::EpochRecord;

/// Mean, sample standard deviation and count of some numbers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stat {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation (0 for one number).
    pub std: f64,
    /// How many numbers.
    pub n: usize,
}

impl Stat {
    /// The statistics of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(Stat {
            mean,
            std: var.sqrt(),
            n: values.len(),
        })
    }
}

/// One grid point's row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The grid point's name.
    pub point: String,
    /// Its grid values as `--set` items.
    pub sets: Vec<String>,
    /// Runs of this point (one per seed).
    pub runs: usize,
    /// Runs with a result.
    pub done: usize,
    /// Runs that failed (or stopped, diverged, with a checkpoint).
    pub failed: usize,
    /// Runs not finished (pending or running).
    pub missing: usize,
    /// Runs whose result says they diverged.
    pub diverged: usize,
    /// `paper.sgd.test_error` (percent).
    pub sgd_error: Option<Stat>,
    /// `paper.swa.test_error` (percent).
    pub swa_error: Option<Stat>,
    /// `paper.sgd.test_loss`.
    pub sgd_loss: Option<Stat>,
    /// `paper.swa.test_loss`.
    pub swa_loss: Option<Stat>,
    /// Per epoch: mean test error of the SGD iterate and of the average
    /// over the runs that reached that epoch (for the curves).
    #[serde(skip)]
    pub curves: Vec<(u64, f64, Option<f64>)>,
}

/// The report of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The experiment file.
    pub experiment: String,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// One row per grid point, in grid order.
    pub rows: Vec<Row>,
}

impl Report {
    /// Reads the sweep in `dir`: its manifest and each run's results.
    pub fn read(dir: &Path) -> Result<Report, SweepError> {
        let plan = Plan::read(dir)?;
        let mut rows: Vec<Row> = Vec::new();
        // Per row: every run's epochs, and the results of the finished runs.
        let mut histories: Vec<Vec<Vec<EpochRecord>>> = Vec::new();
        let mut finished: Vec<Vec<Value>> = Vec::new();
        for run in &plan.runs {
            if rows.last().map(|r| &r.point) != Some(&run.point) {
                rows.push(Row {
                    point: run.point.clone(),
                    sets: run.sets.clone(),
                    runs: 0,
                    done: 0,
                    failed: 0,
                    missing: 0,
                    diverged: 0,
                    sgd_error: None,
                    swa_error: None,
                    sgd_loss: None,
                    swa_loss: None,
                    curves: Vec::new(),
                });
                histories.push(Vec::new());
                finished.push(Vec::new());
            }
            let (Some(row), Some(history), Some(results)) =
                (rows.last_mut(), histories.last_mut(), finished.last_mut())
            else {
                continue;
            };
            row.runs += 1;
            let run_dir = dir.join(&run.dir);
            match run_state(dir, run) {
                RunState::Done => {
                    row.done += 1;
                    results.extend(read_json(&run_dir.join("result.json")));
                }
                RunState::Failed | RunState::Interrupted => row.failed += 1,
                RunState::Pending | RunState::Running => row.missing += 1,
            }
            history.push(read_metrics(&run_dir));
        }
        for ((row, history), results) in rows.iter_mut().zip(&histories).zip(&finished) {
            row.diverged = results.iter().filter(|r| r["status"] == "diverged").count();
            let stat = |which: &str, what: &str| {
                let values: Vec<f64> = results
                    .iter()
                    .filter_map(|r| r["paper"][which][what].as_f64())
                    .collect();
                Stat::of(&values)
            };
            row.sgd_error = stat("sgd", "test_error");
            row.swa_error = stat("swa", "test_error");
            row.sgd_loss = stat("sgd", "test_loss");
            row.swa_loss = stat("swa", "test_loss");
            row.curves = mean_curves(history);
        }
        Ok(Report {
            experiment: plan.experiment.display().to_string(),
            seeds: plan.seeds.clone(),
            rows,
        })
    }

    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# Sweep of {}\n\nTest error (%) as mean ± std over seeds (n = runs with a \
             result); SGD is the iterate after `swa.start` epochs, SWA the average after \
             `train.epochs - 1`, as in the paper.\n\n",
            self.experiment
        );
        out.push_str(
            "| run | SGD error | SWA error | SGD loss | SWA loss | done | failed | missing |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {}/{} | {} | {} |",
                r.point,
                cell(r.sgd_error, 2),
                cell(r.swa_error, 2),
                cell(r.sgd_loss, 4),
                cell(r.swa_loss, 4),
                r.done,
                r.runs,
                marked(r.failed, r.diverged),
                r.missing
            );
        }
        out
    }

    /// The table as CSV (one row per grid point, numbers unrounded).
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "run,sgd_error_mean,sgd_error_std,swa_error_mean,swa_error_std,sgd_loss_mean,\
             swa_loss_mean,n,runs,failed,missing,diverged\n",
        );
        let num =
            |s: Option<Stat>, f: fn(Stat) -> f64| s.map_or(String::new(), |s| f(s).to_string());
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                r.point,
                num(r.sgd_error, |s| s.mean),
                num(r.sgd_error, |s| s.std),
                num(r.swa_error, |s| s.mean),
                num(r.swa_error, |s| s.std),
                num(r.sgd_loss, |s| s.mean),
                num(r.swa_loss, |s| s.mean),
                r.done,
                r.runs,
                r.failed,
                r.missing,
                r.diverged
            );
        }
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> Result<String, SweepError> {
        serde_json::to_string_pretty(self).map_err(|e| SweepError::File {
            path: "report.json".into(),
            source: e.into(),
        })
    }

    /// `curves.svg`: the mean test error against epoch of every grid
    /// point, SGD solid and SWA dashed.
    pub fn curves_svg(&self) -> Result<String, String> {
        use plotters::prelude::*;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let points = self.rows.iter().flat_map(|r| &r.curves);
            let max_epoch = points.clone().map(|c| c.0).max().unwrap_or(1).max(1);
            let max_error = points
                .flat_map(|c| [Some(c.1), c.2])
                .flatten()
                .filter(|e| e.is_finite())
                .fold(1.0f64, f64::max);
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "test error against epoch (mean over seeds)",
                    ("sans-serif", 20),
                )
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(48)
                .build_cartesian_2d(0u64..max_epoch, 0f64..max_error * 1.05)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc("test error (%)")
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, row) in self.rows.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let sgd: Vec<(u64, f64)> = row.curves.iter().map(|c| (c.0, c.1)).collect();
                chart
                    .draw_series(LineSeries::new(sgd, color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(format!("{} SGD", row.point))
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                let swa: Vec<(u64, f64)> = row
                    .curves
                    .iter()
                    .filter_map(|c| c.2.map(|e| (c.0, e)))
                    .collect();
                if !swa.is_empty() {
                    chart
                        .draw_series(DashedLineSeries::new(swa, 6, 4, color.stroke_width(2)))
                        .map_err(|e| e.to_string())?
                        .label(format!("{} SWA", row.point))
                        .legend(move |(x, y)| {
                            plotters::element::DashedPathElement::new(
                                [(x, y), (x + 16, y)],
                                4,
                                3,
                                color.stroke_width(2),
                            )
                        });
                }
            }
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .draw()
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }

    /// Writes `report.md`, `report.csv`, `report.json` and `curves.svg`
    /// into `dir`, each atomically.
    pub fn write(&self, dir: &Path) -> Result<(), SweepError> {
        let svg = self.curves_svg().map_err(|e| SweepError::File {
            path: dir.join("curves.svg"),
            source: e.into(),
        })?;
        for (name, text) in [
            ("report.md", self.markdown()),
            ("report.csv", self.csv()),
            ("report.json", self.json()?),
            ("curves.svg", svg),
        ] {
            let path = dir.join(name);
            crate::atomic::write(&path, text.as_bytes()).map_err(|e| SweepError::File {
                path,
                source: e.into(),
            })?;
        }
        Ok(())
    }
}

fn cell(stat: Option<Stat>, digits: usize) -> String {
    match stat {
        Some(s) => format!("{:.digits$} ± {:.digits$} (n={})", s.mean, s.std, s.n),
        None => "—".into(),
    }
}

fn marked(failed: usize, diverged: usize) -> String {
    match (failed, diverged) {
        (0, 0) => "0".into(),
        (f, 0) => format!("**{f}**"),
        (f, d) => format!("**{f}** ({d} diverged)"),
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn read_metrics(run_dir: &Path) -> Vec<EpochRecord> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Per epoch, the mean test error of the SGD iterate and of the average
/// over the runs that reached it.
fn mean_curves(histories: &[Vec<EpochRecord>]) -> Vec<(u64, f64, Option<f64>)> {
    let epochs = histories.iter().map(Vec::len).max().unwrap_or(0);
    (0..epochs)
        .filter_map(|e| {
            let at: Vec<&EpochRecord> = histories.iter().filter_map(|h| h.get(e)).collect();
            let sgd = Stat::of(&at.iter().map(|r| r.test_error).collect::<Vec<_>>())?;
            let swa: Vec<f64> = at.iter().filter_map(|r| r.swa_test_error).collect();
            Some((e as u64, sgd.mean, Stat::of(&swa).map(|s| s.mean)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_mean_and_sample_std() {
        let s = Stat::of(&[6.0, 7.0, 8.0]).unwrap();
        assert_eq!((s.mean, s.n), (7.0, 3));
        assert!((s.std - 1.0).abs() < 1e-12);
        assert_eq!(Stat::of(&[3.0]).unwrap().std, 0.0);
        assert_eq!(Stat::of(&[]), None);
    }
}
