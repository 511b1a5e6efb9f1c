//! The region tree: the real province and 13 cities, with synthetic counties (real ones for
//! Nanjing), townships, communities and grid cells below them, each with a rectangle polygon.
//!
//! Geometry is synthetic: each city is a rectangle around its real centre, subdivided without
//! gaps down to grid cells, so every child lies inside its parent and every point generated in
//! a grid cell lies in its community, township, county and city.

use crate::rng::Rng;

/// A published fact about a city: code, names, 2023 GDP (100M CNY), end-2023 resident
/// population (10k), approximate centre (WGS84) and area (km²).
pub struct CityFact {
    pub code: &'static str,
    pub name_zh: &'static str,
    pub name_en: &'static str,
    pub gdp_2023_100m_cny: f64,
    pub residents_2023_10k: f64,
    pub centre_lon_lat: [f64; 2],
    pub area_km2: f64,
}

const fn city(
    code: &'static str,
    name_zh: &'static str,
    name_en: &'static str,
    gdp_2023_100m_cny: f64,
    residents_2023_10k: f64,
    centre_lon_lat: [f64; 2],
    area_km2: f64,
) -> CityFact {
    CityFact {
        code,
        name_zh,
        name_en,
        gdp_2023_100m_cny,
        residents_2023_10k,
        centre_lon_lat,
        area_km2,
    }
}

/// Jiangsu's 13 prefecture-level cities (codes from the statistics bureau's division codes;
/// GDP and population from the 2023 statistical communiqués).
pub const CITIES: [CityFact; 13] = [
    city(
        "3201",
        "南京市",
        "Nanjing",
        17421.40,
        954.7,
        [118.80, 32.06],
        6587.0,
    ),
    city(
        "3202",
        "无锡市",
        "Wuxi",
        15456.19,
        749.5,
        [120.31, 31.49],
        4627.0,
    ),
    city(
        "3203",
        "徐州市",
        "Xuzhou",
        8900.44,
        902.0,
        [117.28, 34.21],
        11765.0,
    ),
    city(
        "3204",
        "常州市",
        "Changzhou",
        10116.36,
        537.5,
        [119.97, 31.81],
        4372.0,
    ),
    city(
        "3205",
        "苏州市",
        "Suzhou",
        24653.37,
        1295.8,
        [120.59, 31.30],
        8657.0,
    ),
    city(
        "3206",
        "南通市",
        "Nantong",
        11813.27,
        774.9,
        [120.89, 32.01],
        8001.0,
    ),
    city(
        "3207",
        "连云港市",
        "Lianyungang",
        4363.61,
        459.4,
        [119.22, 34.60],
        7615.0,
    ),
    city(
        "3208",
        "淮安市",
        "Huai'an",
        5015.06,
        453.8,
        [119.02, 33.61],
        10030.0,
    ),
    city(
        "3209",
        "盐城市",
        "Yancheng",
        7403.87,
        668.9,
        [120.16, 33.35],
        16931.0,
    ),
    city(
        "3210",
        "扬州市",
        "Yangzhou",
        7423.26,
        458.5,
        [119.41, 32.39],
        6591.0,
    ),
    city(
        "3211",
        "镇江市",
        "Zhenjiang",
        5264.07,
        322.6,
        [119.45, 32.20],
        3840.0,
    ),
    city(
        "3212",
        "泰州市",
        "Taizhou",
        6731.66,
        450.7,
        [119.92, 32.46],
        5787.0,
    ),
    city(
        "3213",
        "宿迁市",
        "Suqian",
        4398.07,
        497.75,
        [118.28, 33.96],
        8524.0,
    ),
];

/// Nanjing's 11 districts (real codes and names).
pub const NANJING_DISTRICTS: [(&str, &str); 11] = [
    ("320102", "玄武区"),
    ("320104", "秦淮区"),
    ("320105", "建邺区"),
    ("320106", "鼓楼区"),
    ("320111", "浦口区"),
    ("320113", "栖霞区"),
    ("320114", "雨花台区"),
    ("320115", "江宁区"),
    ("320116", "六合区"),
    ("320117", "溧水区"),
    ("320118", "高淳区"),
];

/// The district whose buildings are generated for the twin (玄武区, Nanjing).
pub const DEMO_DISTRICT: &str = "320102";

/// Real street (township) names of the demo district.
const DEMO_TOWNSHIPS: [&str; 7] = [
    "梅园新村街道",
    "新街口街道",
    "玄武门街道",
    "锁金村街道",
    "红山街道",
    "孝陵卫街道",
    "玄武湖街道",
];

/// An axis-aligned rectangle in degrees: [min_lon, min_lat, max_lon, max_lat].
pub type Rect = [f64; 4];

#[derive(Clone, Debug)]
pub struct Region {
    pub code: String,
    pub name: String,
    pub level: &'static str,
    pub parent: Option<String>,
    pub rect: Rect,
}

impl Region {
    pub fn centre(&self) -> [f64; 2] {
        [
            (self.rect[0] + self.rect[2]) / 2.0,
            (self.rect[1] + self.rect[3]) / 2.0,
        ]
    }
}

/// How many children each level gets at a scale.
#[derive(Clone, Copy, Debug)]
pub struct Fanout {
    pub counties_per_city: usize,
    pub townships_per_county: usize,
    pub communities_per_township: usize,
    pub grids_per_community: usize,
}

/// Splits `rect` into `n` rectangles that cover it without gaps, row by row.
pub fn subdivide(rect: Rect, n: usize) -> Vec<Rect> {
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let height = (rect[3] - rect[1]) / rows as f64;
    let mut out = Vec::with_capacity(n);
    for row in 0..rows {
        let in_row = if row == rows - 1 {
            n - cols * (rows - 1)
        } else {
            cols
        };
        let width = (rect[2] - rect[0]) / in_row as f64;
        let top = rect[3] - height * row as f64;
        for col in 0..in_row {
            let left = rect[0] + width * col as f64;
            out.push([left, top - height, left + width, top]);
        }
    }
    out
}

/// Degrees per metre at a latitude (a local equirectangular approximation, good enough for
/// synthetic geometry).
pub fn degrees_per_m(lat: f64) -> [f64; 2] {
    [1.0 / (111_320.0 * lat.to_radians().cos()), 1.0 / 110_540.0]
}

/// Builds the whole tree, parents before children.
pub fn build_tree(fanout: Fanout, rng: &mut Rng) -> Vec<Region> {
    let mut out = vec![Region {
        code: "32".into(),
        name: "江苏省".into(),
        level: "province",
        parent: None,
        rect: [116.35, 30.75, 121.95, 35.15],
    }];
    for c in &CITIES {
        // Cities are shrunk rectangles around their centres so that neighbours rarely overlap.
        let side_m = c.area_km2.sqrt() * 1000.0 * 0.3;
        let [dlon, dlat] = degrees_per_m(c.centre_lon_lat[1]);
        let [lon, lat] = c.centre_lon_lat;
        let rect = [
            lon - side_m / 2.0 * dlon,
            lat - side_m / 2.0 * dlat,
            lon + side_m / 2.0 * dlon,
            lat + side_m / 2.0 * dlat,
        ];
        out.push(Region {
            code: c.code.into(),
            name: c.name_zh.into(),
            level: "city",
            parent: Some("32".into()),
            rect,
        });
        let counties: Vec<(String, String)> = if c.code == "3201" {
            NANJING_DISTRICTS
                .iter()
                .map(|(code, name)| (code.to_string(), name.to_string()))
                .collect()
        } else {
            (0..fanout.counties_per_city)
                .map(|i| {
                    (
                        format!("{}{:02}", c.code, 81 + i),
                        format!("{}第{}区县", c.name_zh, i + 1),
                    )
                })
                .collect()
        };
        for ((county_code, county_name), county_rect) in
            counties.iter().zip(subdivide(rect, counties.len()))
        {
            push_county(
                &mut out,
                c.code,
                county_code,
                county_name,
                county_rect,
                fanout,
                rng,
            );
        }
    }
    out
}

fn push_county(
    out: &mut Vec<Region>,
    city_code: &str,
    code: &str,
    name: &str,
    rect: Rect,
    fanout: Fanout,
    rng: &mut Rng,
) {
    out.push(Region {
        code: code.into(),
        name: name.into(),
        level: "county",
        parent: Some(city_code.into()),
        rect,
    });
    let short = name.trim_end_matches('区').trim_end_matches('县');
    for (t, t_rect) in subdivide(rect, fanout.townships_per_county)
        .into_iter()
        .enumerate()
    {
        let t_code = format!("{code}{:03}", t + 1);
        let t_name = if code == DEMO_DISTRICT && t < DEMO_TOWNSHIPS.len() {
            DEMO_TOWNSHIPS[t].to_string()
        } else {
            format!("{short}第{}街道", t + 1)
        };
        out.push(Region {
            code: t_code.clone(),
            name: t_name.clone(),
            level: "township",
            parent: Some(code.into()),
            rect: t_rect,
        });
        let t_short = t_name.trim_end_matches("街道").to_string();
        for (m, m_rect) in subdivide(t_rect, fanout.communities_per_township)
            .into_iter()
            .enumerate()
        {
            let m_code = format!("{t_code}{:03}", m + 1);
            let m_name = format!("{t_short}第{}社区", m + 1);
            out.push(Region {
                code: m_code.clone(),
                name: m_name.clone(),
                level: "community",
                parent: Some(t_code.clone()),
                rect: m_rect,
            });
            for (g, g_rect) in subdivide(m_rect, fanout.grids_per_community)
                .into_iter()
                .enumerate()
            {
                out.push(Region {
                    code: format!("{m_code}-{:03}", g + 1),
                    name: format!("{m_name}网格{:03}", g + 1),
                    level: "grid",
                    parent: Some(m_code.clone()),
                    rect: g_rect,
                });
            }
        }
    }
    // Keep the stream position independent of names: one draw per county.
    rng.next_u64();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdivision_covers_without_gaps() {
        for n in 1..=13 {
            let parts = subdivide([0.0, 0.0, 10.0, 6.0], n);
            assert_eq!(parts.len(), n);
            let area: f64 = parts.iter().map(|r| (r[2] - r[0]) * (r[3] - r[1])).sum();
            assert!((area - 60.0).abs() < 1e-9, "n={n} area={area}");
        }
    }

    #[test]
    fn tree_links_children_inside_parents() {
        let fanout = Fanout {
            counties_per_city: 2,
            townships_per_county: 2,
            communities_per_township: 2,
            grids_per_community: 3,
        };
        let tree = build_tree(fanout, &mut Rng::new(1));
        let by_code: std::collections::HashMap<&str, &Region> =
            tree.iter().map(|r| (r.code.as_str(), r)).collect();
        assert_eq!(tree.iter().filter(|r| r.level == "city").count(), 13);
        for r in &tree {
            let Some(p) = &r.parent else { continue };
            let parent = by_code[p.as_str()];
            let c = r.centre();
            if r.level != "city" {
                assert!(c[0] > parent.rect[0] && c[0] < parent.rect[2], "{}", r.code);
                assert!(c[1] > parent.rect[1] && c[1] < parent.rect[3], "{}", r.code);
            }
            assert!(r.code.starts_with(p.as_str()), "{} under {p}", r.code);
        }
        assert!(by_code.contains_key("320102001001-001"));
        assert_eq!(by_code["320102001"].name, "梅园新村街道");
    }
}
