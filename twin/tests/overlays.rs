//! Overlays bound to one indicator: density divides by each region's area, alerts raise a
//! marker and a ⚠ label over critical regions only, and a target centres the legend.

use std::collections::HashMap;
use twin::{
    CityModel, Overlay, OverlayLayers, OverlaySpec, RampKind, RegionShape, SceneInput, prepare,
};

/// Two square regions near Nanjing: "a" 2 km across, "b" 1 km across.
fn regions() -> Vec<RegionShape> {
    let square = |code: &str, lon: f64, half_m: f64| {
        let (dlon, dlat) = (half_m / 94_490.0, half_m / 110_850.0);
        RegionShape {
            code: code.into(),
            name: format!("区域{code}"),
            polygons: vec![vec![vec![
                [lon - dlon, 32.0 - dlat],
                [lon + dlon, 32.0 - dlat],
                [lon + dlon, 32.0 + dlat],
                [lon - dlon, 32.0 + dlat],
            ]]],
        }
    };
    vec![square("a", 118.80, 1000.0), square("b", 118.83, 500.0)]
}

fn overlay(layers: OverlayLayers, critical: &[&str]) -> Overlay {
    Overlay {
        spec: OverlaySpec {
            title: "工单 orders".into(),
            unit: "orders".into(),
            period: "2025".into(),
            higher_is_better: false,
            target: None,
            ramp: RampKind::Auto,
        },
        values: HashMap::from([("a".into(), 400.0), ("b".into(), 400.0)]),
        critical: critical.iter().map(|c| c.to_string()).collect(),
        layers,
    }
}

fn scene(o: Overlay) -> twin::PreparedScene {
    prepare(&SceneInput {
        key: "overlays".into(),
        model: CityModel::default(),
        regions: regions(),
        overlay: Some(o),
    })
    .unwrap()
}

#[test]
fn density_is_per_square_kilometre() {
    let s = scene(overlay(
        OverlayLayers {
            buildings: false,
            density: true,
            labels: true,
            ..OverlayLayers::default()
        },
        &[],
    ));
    // 400 orders over 4 km² and over 1 km².
    let density = |code: &str| -> f64 {
        let l = s
            .labels
            .iter()
            .find(|l| l.text.starts_with(&format!("区域{code} ")))
            .unwrap();
        l.text.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // Within 1% (the local frame is a projection, areas are not exact to the metre).
    assert!((density("a") - 100.0).abs() < 1.0, "{}", density("a"));
    assert!((density("b") - 400.0).abs() < 4.0, "{}", density("b"));
    let spec = s.overlay.as_ref().unwrap();
    assert_eq!(spec.unit, "orders/km²");
    assert!(s.choropleth.is_some());
    // Sequential ramp, darker is worse: b (denser, lower is better) is the darkest class.
    let legend = s.legend.as_ref().unwrap();
    let dark = legend.colour_of(Some(400.0));
    let light = legend.colour_of(Some(100.0));
    assert!(dark.iter().take(3).sum::<f32>() < light.iter().take(3).sum::<f32>());
}

#[test]
fn alerts_mark_critical_regions_only() {
    let layers = OverlayLayers {
        buildings: false,
        alerts: true,
        ..OverlayLayers::default()
    };
    let calm = scene(overlay(layers, &[]));
    assert!(calm.columns.is_none() && calm.labels.is_empty());
    let alarmed = scene(overlay(layers, &["b"]));
    assert_eq!(alarmed.labels.len(), 1);
    assert!(
        alarmed.labels[0].text.starts_with("⚠ 区域b "),
        "{}",
        alarmed.labels[0].text
    );
    let pin = alarmed.columns.as_ref().expect("a marker");
    // The marker stands over b's centre, east of the frame's middle, and is red.
    let b = pin.bounds().unwrap();
    let centre_x = (b[0][0] + b[1][0]) / 2.0;
    assert!(centre_x > 500.0, "{centre_x}");
    assert!(pin.shades_linear.iter().all(|c| c[0] > 0.3 && c[1] < 0.1));
}
