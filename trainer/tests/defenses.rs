//! The oracle and the defenses (issue 6 parts 1 and 2): every defense against its
//! published formula on hand-computed vectors, spec parsing, the query budget, and the
//! victims on each backend.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use compiler::synthetic::Precision;
use compiler::zoo::Arch;
use compiler::Backend;
use tch::Device;
use trainer::attack::defense::{
    self, adaptive_misinformation, gaussian, image_rng, label_only, misinformation_alpha, reverse_sigmoid, round,
    top_k, Defense, DefenseChain,
};
use trainer::attack::oracle::{defense_utility, load_victim, Oracle, OracleError, Victim, VictimKind};
use trainer::attack::poisoning::{mad, GradientMap};

fn assert_close(actual: &[f32], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!((*a as f64 - e).abs() <= tol, "{actual:?} vs {expected:?}");
    }
}

// ---------------------------------------------------------------------------------
// Each defense against its formula.

#[test]
fn reverse_sigmoid_matches_lee_et_al() {
    // y' = alpha * (y - beta * (sigmoid(gamma * ln(y / (1 - y))) - 1/2)), beta = 0.7, gamma = 0.4:
    //   y = 0.7: ln(0.7/0.3) = 0.847298, *0.4 = 0.338919, sigmoid = 0.583924, 0.7 - 0.7*0.083924 = 0.641250
    //   y = 0.2: ln(0.25) = -1.386294, *0.4 = -0.554518, sigmoid = 0.364817, 0.2 + 0.7*0.135183 = 0.294628
    //   y = 0.1: ln(1/9) = -2.197225, *0.4 = -0.878890, sigmoid = 0.293408, 0.1 + 0.7*0.206592 = 0.244614
    //   sum = 1.180493 -> [0.543206, 0.249581, 0.207214]
    let out = reverse_sigmoid(&[0.7, 0.2, 0.1], 0.7, 0.4);
    assert_close(&out, &[0.543206, 0.249581, 0.207214], 2e-6);
    // A confident vector is flattened but keeps its argmax.
    let out = reverse_sigmoid(&[0.98, 0.01, 0.01], 0.7, 0.4);
    assert_eq!(defense::argmax(&out), 0);
    assert!(out[0] < 0.98 && (out.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{out:?}");
}

#[test]
fn rounding_keeps_d_decimals_without_renormalizing() {
    let y = [0.123456f32, 0.654321, 0.222223];
    assert_close(&round(&y, 2), &[0.12, 0.65, 0.22], 1e-7);
    assert_close(&round(&y, 1), &[0.1, 0.7, 0.2], 1e-7);
    assert_close(&round(&y, 0), &[0.0, 1.0, 0.0], 0.0);
    // Half away from zero: 0.125 -> 0.13.
    assert_close(&round(&[0.125, 0.875], 2), &[0.13, 0.88], 1e-7);
}

#[test]
fn top_k_keeps_the_k_largest_renormalized() {
    // [0.1, 0.5, 0.15, 0.25], k = 2: keep 0.5 and 0.25, sum 0.75 -> [0, 2/3, 0, 1/3].
    assert_close(
        &top_k(&[0.1, 0.5, 0.15, 0.25], 2),
        &[0.0, 2.0 / 3.0, 0.0, 1.0 / 3.0],
        1e-7,
    );
    // Ties go to the lower index.
    assert_close(
        &top_k(&[0.4, 0.2, 0.2, 0.2], 2),
        &[2.0 / 3.0, 1.0 / 3.0, 0.0, 0.0],
        1e-7,
    );
    // k >= K is the identity.
    assert_close(&top_k(&[0.3, 0.7], 5), &[0.3, 0.7], 1e-7);
}

#[test]
fn label_only_is_the_one_hot_argmax() {
    assert_eq!(label_only(&[0.2, 0.5, 0.3]), vec![0.0, 1.0, 0.0]);
    assert_eq!(label_only(&[0.4, 0.4, 0.2]), vec![1.0, 0.0, 0.0]);
}

#[test]
fn gaussian_noise_is_seeded_normalized_and_grows_with_sigma() {
    let y = [0.6f32, 0.25, 0.1, 0.05];
    let mut mean_l1 = Vec::new();
    for sigma in [0.0, 0.01, 0.1, 0.5] {
        let mut total = 0.0;
        for i in 0..300 {
            let out = gaussian(&y, sigma, &mut image_rng(42, i));
            assert!(out.iter().all(|&v| v >= 0.0), "{out:?}");
            assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{out:?}");
            // The same stream gives the same answer.
            assert_eq!(out, gaussian(&y, sigma, &mut image_rng(42, i)));
            total += defense::l1(&y, &out);
        }
        mean_l1.push(total / 300.0);
    }
    assert!(mean_l1[0] < 1e-6, "{mean_l1:?}");
    assert!(
        mean_l1.windows(2).all(|w| w[0] < w[1]),
        "mean L1 must grow with sigma: {mean_l1:?}"
    );
    // sigma = 0.01: E|n| = 0.01 * sqrt(2/pi) ~ 0.008 per entry, ~0.03 over 4 entries.
    assert!(mean_l1[1] > 0.01 && mean_l1[1] < 0.06, "{mean_l1:?}");
}

#[test]
fn adaptive_misinformation_mixes_by_the_ood_score() {
    // alpha = 1 / (1 + exp(nu * (max_p - tau))).
    // In distribution (max 0.9, tau 0.5, nu 1000): alpha = 1/(1+e^400) ~ 2e-174 -> y unchanged.
    let y_mis = [0.1f32, 0.1, 0.8];
    assert!(misinformation_alpha(&[0.9, 0.05, 0.05], 0.5, 1000.0) < 1e-170);
    assert_close(
        &adaptive_misinformation(&[0.9, 0.05, 0.05], &y_mis, 0.5, 1000.0),
        &[0.9, 0.05, 0.05],
        1e-7,
    );
    // Out of distribution (max 0.4 < tau): alpha = 1/(1+e^-100) = 1 -> the misinformation vector.
    assert_close(
        &adaptive_misinformation(&[0.4, 0.3, 0.3], &y_mis, 0.5, 1000.0),
        &[0.1, 0.1, 0.8],
        1e-7,
    );
    // At max_p = tau, alpha = 1/2.
    assert!((misinformation_alpha(&[0.5, 0.3, 0.2], 0.5, 10.0) - 0.5).abs() < 1e-12);
    // y = [0.6, 0.3, 0.1], tau 0.5, nu 10: alpha = 1/(1+e^1) = 0.268941;
    // y' = 0.731059*y + 0.268941*[0.1, 0.1, 0.8] = [0.465529, 0.246212, 0.288259].
    assert_close(
        &adaptive_misinformation(&[0.6, 0.3, 0.1], &y_mis, 0.5, 10.0),
        &[0.465529, 0.246212, 0.288259],
        1e-6,
    );
}

/// G rows (d log p_k / dw, D = 2): e_0 -> (1, 0), e_1 -> (0, 1), e_2 -> (-1, 0).
fn hand_jacobian() -> GradientMap {
    GradientMap::Dense(vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![-1.0, 0.0]])
}

#[test]
fn mad_moves_towards_the_most_deviating_vertex_within_epsilon() {
    // y = [0.6, 0.3, 0.1]: G^T y = (0.5, 0.3), unit (0.857493, 0.514496). Vertices:
    //   e_0 -> (1, 0):  |(-0.142507, 0.514496)|^2 = 0.285
    //   e_1 -> (0, 1):  |(0.857493, -0.485504)|^2 = 0.971
    //   e_2 -> (-1, 0): |(1.857493, 0.514496)|^2 = 3.715  <- best
    // ||e_2 - y||_1 = 0.6 + 0.3 + 0.9 = 1.8; epsilon 0.5: a = 0.5/1.8 = 0.277778,
    // y' = (1 - a) y + a e_2 = [0.433333, 0.216667, 0.35], ||y' - y||_1 = 0.5.
    let y = [0.6f32, 0.3, 0.1];
    let out = mad(&y, &hand_jacobian(), 0.5, false);
    assert_close(&out, &[0.433333, 0.216667, 0.35], 1e-6);
    assert!((defense::l1(&y, &out) - 0.5).abs() < 1e-6);
    // epsilon 1: a = 0.555556 -> [0.266667, 0.133333, 0.6]: the argmax moves to class 2.
    assert_close(&mad(&y, &hand_jacobian(), 1.0, false), &[0.266667, 0.133333, 0.6], 1e-6);
    // MAD-argmax caps a below (y_0 - y_2) / (1 + y_0 - y_2) = 1/3: y' ~ [0.4, 0.2, 0.4], argmax kept.
    let kept = mad(&y, &hand_jacobian(), 1.0, true);
    assert_close(&kept, &[0.4, 0.2, 0.4], 1e-4);
    assert_eq!(defense::argmax(&kept), 0);
    // Epsilon 0 changes nothing.
    assert_eq!(mad(&y, &hand_jacobian(), 0.0, false), y.to_vec());
}

#[test]
fn mad_with_a_last_layer_jacobian_stays_within_epsilon() {
    // A proxy predicting p with penultimate features h: every answer stays on the simplex,
    // within epsilon in L1, and differs from y.
    let p = vec![0.2, 0.5, 0.1, 0.2];
    let h = vec![0.3, -1.2, 0.7, 1.0];
    let g = GradientMap::LastLayer { p, h };
    for (i, y) in [
        [0.7f32, 0.1, 0.1, 0.1],
        [0.25, 0.25, 0.4, 0.1],
        [0.05, 0.05, 0.05, 0.85],
    ]
    .iter()
    .enumerate()
    {
        for epsilon in [0.1, 0.5, 1.0] {
            let out = mad(y, &g, epsilon, false);
            let d = defense::l1(y, &out);
            assert!(d <= epsilon + 1e-6 && d > 0.0, "case {i} eps {epsilon}: {out:?}");
            assert!(out.iter().all(|&v| v >= 0.0) && (out.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            let kept = mad(y, &g, epsilon, true);
            assert_eq!(defense::argmax(&kept), defense::argmax(y));
            assert!(defense::l1(y, &kept) <= epsilon + 1e-6);
        }
    }
}

#[test]
fn misinformation_loss_is_minus_log_one_minus_p_label() {
    // logits [0, ln 3, 0] -> p = [0.2, 0.6, 0.2]; label 1: -ln(0.4) = 0.916291; label 0: -ln(0.8) = 0.223144.
    let logits = tch::Tensor::from_slice(&[0.0f32, 3f32.ln(), 0.0, 0.0, 3f32.ln(), 0.0]).view([2, 3]);
    let labels = tch::Tensor::from_slice(&[1i64, 0]);
    let loss = trainer::attack::misinformation::misinformation_loss(&logits, &labels).double_value(&[]);
    assert!((loss - (0.916291 + 0.223144) / 2.0).abs() < 1e-5, "{loss}");
}

// ---------------------------------------------------------------------------------
// Specs.

#[test]
fn good_specs_round_trip_through_display() {
    for spec in [
        "none",
        "round:decimals=2",
        "topk:k=3",
        "label",
        "gaussian:sigma=0.1",
        "reverse-sigmoid:beta=0.7,gamma=0.4",
        "adaptive-misinformation:tau=0.5,nu=1000",
        "adaptive-misinformation:tau=0.9,nu=100,epochs=1,train=500",
        "mad:epsilon=1",
        "mad:epsilon=0.5,argmax=true",
    ] {
        let d: Defense = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(d.to_string(), spec);
        assert_eq!(d.to_string().parse::<Defense>().unwrap(), d);
    }
    // Aliases and spacing parse to the canonical form.
    assert_eq!("top-k:k=3".parse::<Defense>().unwrap().to_string(), "topk:k=3");
    assert_eq!(
        " mad : epsilon = 1.0 ".parse::<Defense>().unwrap().to_string(),
        "mad:epsilon=1"
    );
    assert_eq!(
        "mad:epsilon=1,argmax=false".parse::<Defense>().unwrap().to_string(),
        "mad:epsilon=1"
    );
    let chain: DefenseChain = "reverse-sigmoid:beta=0.7,gamma=0.4 + round:decimals=2".parse().unwrap();
    assert_eq!(chain.0.len(), 2);
    assert_eq!(
        chain.to_string(),
        "reverse-sigmoid:beta=0.7,gamma=0.4 + round:decimals=2"
    );
    assert_eq!(DefenseChain::none().to_string(), "none");
}

#[test]
fn bad_specs_give_one_line_errors_naming_the_defense_and_key() {
    for (spec, needles) in [
        ("foo", &["unknown defense 'foo'", "reverse-sigmoid"][..]),
        ("round", &["round", "'decimals'"]),
        ("round:digits=2", &["unknown key 'digits'", "decimals"]),
        ("round:decimals=2,decimals=3", &["'decimals' given twice"]),
        ("topk:k=0", &["topk", "'k'", "'0'"]),
        ("topk:k", &["key=value", "'k'"]),
        (
            "reverse-sigmoid:beta=x,gamma=0.4",
            &["reverse-sigmoid", "'beta'", "'x'"],
        ),
        ("reverse-sigmoid:beta=0.7", &["'gamma'"]),
        ("gaussian:sigma=-1", &["gaussian", "'sigma'"]),
        ("mad:epsilon=3", &["mad", "'epsilon'"]),
        ("mad:epsilon=1,argmax=yes", &["'argmax'", "true or false"]),
        ("adaptive-misinformation:tau=0.5", &["'nu'"]),
        ("label:k=1", &["unknown key 'k'"]),
    ] {
        let err = spec.parse::<Defense>().unwrap_err();
        assert!(matches!(err, OracleError::Spec(_)), "{spec}: {err:?}");
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "{spec}: multi-line error {msg:?}");
        for needle in needles {
            assert!(msg.contains(needle), "{spec}: {msg:?} lacks {needle:?}");
        }
    }
    let err = "float-ish".parse::<VictimKind>().unwrap_err().to_string();
    assert!(err.contains("float-ish") && err.contains("reference"), "{err}");
    for kind in VictimKind::ALL {
        assert_eq!(kind.to_string().parse::<VictimKind>().unwrap(), kind);
    }
}

#[test]
fn labels_only_follows_the_chain() {
    let chain = |s: &str| s.parse::<DefenseChain>().unwrap();
    assert!(chain("label").labels_only());
    assert!(chain("reverse-sigmoid:beta=0.7,gamma=0.4 + label + round:decimals=2").labels_only());
    assert!(!chain("label + gaussian:sigma=0.1").labels_only());
    assert!(!chain("topk:k=1").labels_only());
    assert!(!DefenseChain::none().labels_only());
}

// ---------------------------------------------------------------------------------
// The oracle.

/// A 3-class victim on 1x2x2 images that counts the images it answered.
struct Counting {
    answered: Rc<Cell<usize>>,
}

impl Victim for Counting {
    fn classes(&self) -> usize {
        3
    }
    fn input_shape(&self) -> [usize; 3] {
        [1, 2, 2]
    }
    fn name(&self) -> String {
        "counting".into()
    }
    fn probabilities(&mut self, images: &[u8]) -> Result<Vec<Vec<f32>>, OracleError> {
        self.answered.set(self.answered.get() + images.len() / 4);
        // The first pixel picks the confident class.
        Ok(images
            .chunks(4)
            .map(|im| {
                let mut p = vec![0.1f32; 3];
                p[im[0] as usize % 3] = 0.8;
                p
            })
            .collect())
    }
}

/// A witness that disagrees with `Counting` on images whose first pixel is 2 fails the
/// query that contains one, naming it; agreeing answers are counted as confirmed.
#[test]
fn a_cross_check_names_the_first_differing_query() {
    struct Disagreeing;
    impl Victim for Disagreeing {
        fn classes(&self) -> usize {
            3
        }
        fn input_shape(&self) -> [usize; 3] {
            [1, 2, 2]
        }
        fn name(&self) -> String {
            "disagreeing".into()
        }
        fn probabilities(&mut self, images: &[u8]) -> Result<Vec<Vec<f32>>, OracleError> {
            let mut counting = Counting {
                answered: Rc::new(Cell::new(0)),
            };
            let mut p = counting.probabilities(images)?;
            for (row, im) in p.iter_mut().zip(images.chunks(4)) {
                if im[0] == 2 {
                    row[0] = f32::from_bits(row[0].to_bits() + 1);
                }
            }
            Ok(p)
        }
    }
    let (oracle, _) = counting_oracle("none", 10);
    let mut oracle = oracle.cross_check(Box::new(Disagreeing));
    oracle.query(&[0, 0, 0, 0, 1, 0, 0, 0]).unwrap();
    assert_eq!(oracle.confirmed_queries(), 2);
    let err = oracle.query(&[1, 0, 0, 0, 2, 0, 0, 0]).unwrap_err().to_string();
    assert!(
        err.contains("query 3: counting answered") && err.contains("disagreeing answered"),
        "{err}"
    );
    assert_eq!(oracle.confirmed_queries(), 2);
}

fn counting_oracle(defenses: &str, budget: usize) -> (Oracle, Rc<Cell<usize>>) {
    let answered = Rc::new(Cell::new(0));
    let victim = Box::new(Counting {
        answered: answered.clone(),
    });
    (Oracle::new(victim, defenses.parse().unwrap(), budget, 7), answered)
}

#[test]
fn the_budget_refuses_a_batch_that_would_exceed_it() {
    let (mut oracle, answered) = counting_oracle("none", 5);
    assert_eq!(oracle.query(&[0, 0, 0, 0, 1, 0, 0, 0]).unwrap().len(), 2);
    assert_eq!(oracle.query(&[2, 0, 0, 0, 0, 0, 0, 0]).unwrap().len(), 2);
    assert_eq!((oracle.queries_used(), answered.get()), (4, 4));
    // Two more would make 6 > 5: refused, the victim never sees them, nothing counted.
    let err = oracle.query(&[1; 8]).unwrap_err();
    assert!(
        matches!(
            err,
            OracleError::BudgetExceeded {
                budget: 5,
                used: 4,
                asked: 2
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("budget of 5"), "{err}");
    assert_eq!((oracle.queries_used(), answered.get()), (4, 4));
    // A ragged batch is refused without counting either.
    assert!(matches!(oracle.query(&[1; 3]), Err(OracleError::Victim(_))));
    assert_eq!(oracle.queries_used(), 4);
    // The last query fits exactly.
    assert_eq!(oracle.query(&[1; 4]).unwrap(), vec![vec![0.1, 0.8, 0.1]]);
    assert_eq!((oracle.queries_used(), oracle.budget(), answered.get()), (5, 5, 5));
    assert!(oracle.query(&[1; 4]).is_err());
    assert!(oracle.query(&[]).unwrap().is_empty());
    assert_eq!(oracle.describe(), "counting + none");
}

#[test]
fn the_oracle_answers_with_the_defended_vectors() {
    let (mut oracle, _) = counting_oracle("topk:k=1", 100);
    assert_eq!(oracle.query(&[2, 0, 0, 0]).unwrap(), vec![vec![0.0, 0.0, 1.0]]);
    let (mut oracle, _) = counting_oracle("reverse-sigmoid:beta=0.7,gamma=0.4 + label", 100);
    assert!(oracle.labels_only());
    assert_eq!(oracle.query(&[1, 0, 0, 0]).unwrap(), vec![vec![0.0, 1.0, 0.0]]);
    assert_eq!(
        oracle.describe(),
        "counting + reverse-sigmoid:beta=0.7,gamma=0.4 + label"
    );
    // Gaussian noise does not depend on how the queries are batched.
    let images: Vec<u8> = (0..40).collect();
    let (mut one, _) = counting_oracle("gaussian:sigma=0.2", 100);
    let (mut split, _) = counting_oracle("gaussian:sigma=0.2", 100);
    let whole = one.query(&images).unwrap();
    let mut parts = split.query(&images[..12]).unwrap();
    parts.extend(split.query(&images[12..]).unwrap());
    assert_eq!(whole, parts);
    // Defenses needing a model refuse until prepared.
    let (mut oracle, answered) = counting_oracle("mad:epsilon=1", 100);
    let err = oracle.query(&[0; 4]).unwrap_err().to_string();
    assert!(err.contains("mad") && err.contains("prepare"), "{err}");
    assert_eq!((oracle.queries_used(), answered.get()), (0, 0));
}

#[test]
fn defense_utility_reports_accuracy_and_l1() {
    let answered = Rc::new(Cell::new(0));
    let mut victim = Counting { answered };
    // Classes by first pixel: 0, 1, 2, 0; labels make the victim 3/4 right.
    let images = [0u8, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0];
    let labels = [0u16, 1, 2, 1];
    let u = defense_utility(&mut victim, &DefenseChain::none(), &images, &labels, 0).unwrap();
    assert_eq!(
        (u.victim_accuracy, u.defended_accuracy, u.mean_l1, u.images),
        (0.75, 0.75, 0.0, 4)
    );
    // Label-only: [0.1, 0.8, 0.1] -> one-hot, L1 = 0.1 + 0.2 + 0.1 = 0.4.
    let label: DefenseChain = "label".parse().unwrap();
    let u = defense_utility(&mut victim, &label, &images, &labels, 0).unwrap();
    assert_eq!(u.defended_accuracy, 0.75);
    assert!((u.mean_l1 - 0.4).abs() < 1e-6, "{u:?}");
    assert!(defense_utility(&mut victim, &label, &images, &labels[..3], 0).is_err());
}

// ---------------------------------------------------------------------------------
// Victims on the backends.

fn test_images(n: usize, len: usize) -> Vec<u8> {
    (0..n * len)
        .map(|i| ((i * 131 + (i / len) * 977) % 256) as u8)
        .collect()
}

/// Small-cnn at a quarter of its width (211k MACs) with random parameters.
fn write_tiny_model(dir: &Path) -> compiler::Model {
    let model = compiler::synthetic::random_model(Arch::SmallCnn, [1, 28, 28], 10, 0.25, Precision::W8A8, 7).unwrap();
    compiler::save(&model, &dir.join("model.qnn")).unwrap();
    model
}

#[test]
fn reference_and_functional_victims_give_identical_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny_model(dir.path());
    let images = test_images(6, 784);
    let mut reference = load_victim(dir.path(), VictimKind::Reference, None, Device::Cpu).unwrap();
    assert_eq!((reference.classes(), reference.input_shape()), (10, [1, 28, 28]));
    assert_eq!(reference.name(), format!("reference({})", dir.path().display()));
    let p = reference.probabilities(&images).unwrap();
    // softmax(scale * integer logits), computed here independently.
    let logits = compiler::Reference::new(model.clone()).infer(&images).unwrap().logits;
    let scale = model.output().scale as f64;
    for (row, l) in p.iter().zip(&logits) {
        let z: Vec<f64> = l.iter().map(|&v| v as f64 * scale).collect();
        let m = z.iter().cloned().fold(f64::MIN, f64::max);
        let sum: f64 = z.iter().map(|v| (v - m).exp()).sum();
        let expected: Vec<f64> = z.iter().map(|v| (v - m).exp() / sum).collect();
        assert_close(row, &expected, 1e-7);
    }
    let hw = compiler::hw::HwConfig::preset(2, 2).unwrap();
    let mut functional = load_victim(dir.path(), VictimKind::Functional, Some(&hw), Device::Cpu).unwrap();
    assert_eq!(functional.probabilities(&images).unwrap(), p);
    // The .qnn file itself is accepted too; a missing model names the file.
    let mut direct = load_victim(&dir.path().join("model.qnn"), VictimKind::Reference, None, Device::Cpu).unwrap();
    assert_eq!(direct.probabilities(&images).unwrap(), p);
    let err = load_victim(&dir.path().join("nothing"), VictimKind::Reference, None, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nothing/model.qnn") && err.contains("not found"), "{err}");
    // Float needs a run directory.
    let err = load_victim(dir.path(), VictimKind::Float, None, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("config.toml"), "{err}");
}

fn verilator_present() -> bool {
    let present = std::process::Command::new("verilator")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        println!("SKIPPED: verilator not found on PATH; run scripts/setup.sh");
    }
    present
}

#[test]
fn rtl_victim_answers_like_the_reference() {
    if !verilator_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path());
    let images = test_images(3, 784);
    let hw = compiler::hw::HwConfig::preset(2, 2).unwrap();
    let mut rtl = load_victim(dir.path(), VictimKind::Rtl, Some(&hw), Device::Cpu).unwrap();
    let mut reference = load_victim(dir.path(), VictimKind::Reference, None, Device::Cpu).unwrap();
    assert_eq!(
        rtl.probabilities(&images).unwrap(),
        reference.probabilities(&images).unwrap()
    );
    assert!(rtl.name().starts_with("rtl("));
}

// ---------------------------------------------------------------------------------
// Victims and model-based defenses on a tiny training run.

fn tiny_run(mode: trainer::config::TrainMode, teacher: Option<&Path>, out: &Path) {
    use trainer::config::{TrainConfig, TrainMode};
    let config = TrainConfig {
        width: 0.5,
        epochs: 1,
        batch_size: 64,
        train_limit: Some(640),
        test_limit: Some(100),
        calibration_batches: 2,
        teacher: teacher.map(Path::to_path_buf),
        lr: if mode == TrainMode::Fp { 3e-3 } else { 3e-4 },
        ..TrainConfig::defaults(mode, datasets::DatasetId::FashionMnist)
    };
    let options = trainer::train::RunOptions {
        out: out.to_path_buf(),
        resume: false,
        device: Device::Cpu,
        show_progress: false,
        locations: datasets::DataLocations::default_locations(),
        pause_after: None,
    };
    trainer::train::run(&config, &options).unwrap().expect("not paused");
}

fn accuracy(p: &[Vec<f32>], labels: &[u16]) -> f64 {
    let correct = p
        .iter()
        .zip(labels)
        .filter(|(p, l)| defense::argmax(p) == **l as usize)
        .count();
    correct as f64 / labels.len() as f64
}

#[test]
fn run_victims_and_model_defenses() {
    use trainer::attack::misinformation::{MisinformationModel, MisinformationOptions};
    use trainer::config::TrainMode;
    let dir = tempfile::tempdir().unwrap();
    let (fp, qat) = (dir.path().join("fp"), dir.path().join("qat"));
    tiny_run(TrainMode::Fp, None, &fp);
    tiny_run(TrainMode::Qat, Some(&fp), &qat);
    let test = datasets::load(
        datasets::DatasetId::FashionMnist,
        datasets::SplitKind::Test,
        &datasets::DataLocations::default_locations(),
    )
    .unwrap()
    .subset(60, 3);
    let (images, labels) = (&test.images, &test.labels);

    // Float (fp run), fake-quant and reference (qat run): the fake-quant victim answers
    // exactly like the integer model; the QAT run's float shadow agrees on most images.
    let mut float = load_victim(&fp, VictimKind::Float, None, Device::Cpu).unwrap();
    let p_float = float.probabilities(images).unwrap();
    assert!(accuracy(&p_float, labels) > 0.2, "{}", accuracy(&p_float, labels));
    let mut fakequant = load_victim(&qat, VictimKind::FakeQuant, None, Device::Cpu).unwrap();
    let mut reference = load_victim(&qat, VictimKind::Reference, None, Device::Cpu).unwrap();
    let p_ref = reference.probabilities(images).unwrap();
    assert_eq!(fakequant.probabilities(images).unwrap(), p_ref);
    let p_shadow = load_victim(&qat, VictimKind::Float, None, Device::Cpu)
        .unwrap()
        .probabilities(images)
        .unwrap();
    let agree = p_shadow
        .iter()
        .zip(&p_ref)
        .filter(|(a, b)| defense::argmax(a) == defense::argmax(b))
        .count();
    assert!(
        agree * 10 >= images.len() / 784 * 8,
        "float shadow agrees on {agree} images"
    );
    let err = load_victim(&fp, VictimKind::FakeQuant, None, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("config.toml") && err.contains("fp run"), "{err}");

    // Adaptive misinformation: the misinformation model is trained once, cached in the run.
    let options = MisinformationOptions {
        epochs: 1,
        train_images: 1024,
        lr: 2e-3,
    };
    let mut chain: DefenseChain = "adaptive-misinformation:tau=0.5,nu=1000,epochs=1,train=1024"
        .parse()
        .unwrap();
    chain.prepare(&qat, Device::Cpu, 1).unwrap();
    let cached = MisinformationModel::load_or_train(&qat, &options, Device::Cpu, 1).unwrap();
    assert!(
        cached.cached && cached.path.starts_with(&qat),
        "{}",
        cached.path.display()
    );
    // It learned to avoid the true label: less mass there than the victim puts.
    let p_mis = cached.probabilities(images, [1, 28, 28]).unwrap();
    let on_label = |p: &[Vec<f32>]| p.iter().zip(labels).map(|(p, &l)| p[l as usize] as f64).sum::<f64>();
    let n = labels.len() as f64;
    let (mis, victim) = (on_label(&p_mis) / n, on_label(&p_ref) / n);
    println!("mean probability of the label: misinformation {mis:.3}, victim {victim:.3}");
    assert!(
        mis < 0.09 && mis < victim,
        "misinformation {mis} vs victim {victim} (uniform: 0.1)"
    );
    let u = defense_utility(reference.as_mut(), &chain, images, labels, 0).unwrap();
    assert_eq!(u.victim_accuracy, accuracy(&p_ref, labels));
    assert!(u.mean_l1 >= 0.0 && u.images == labels.len());

    // MAD with a random proxy: every answer within epsilon in L1, and answers change.
    let mut chain: DefenseChain = "mad:epsilon=0.5".parse().unwrap();
    chain.prepare(&qat, Device::Cpu, 1).unwrap();
    let victim = load_victim(&qat, VictimKind::Reference, None, Device::Cpu).unwrap();
    let mut oracle = Oracle::new(victim, chain, 1000, 0);
    let answers = oracle.query(images).unwrap();
    let distances: Vec<f64> = answers.iter().zip(&p_ref).map(|(a, p)| defense::l1(a, p)).collect();
    assert!(distances.iter().all(|&d| d <= 0.5 + 1e-5), "{distances:?}");
    assert!(
        distances.iter().filter(|&&d| d > 0.1).count() > labels.len() / 2,
        "{distances:?}"
    );
    assert!(answers.iter().all(|a| (a.iter().sum::<f32>() - 1.0).abs() < 1e-5));
}
