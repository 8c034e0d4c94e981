//! `collect` writes a dataset that reads back with the right shapes, deterministically.

use amisim::data::collect::{collect, CollectConfig};
use amisim::data::dataset::{shard_path, Shard};
use amisim::world::policy::{PolicyKind, RandomWalkConfig};

fn config(policy: PolicyKind) -> CollectConfig {
    CollectConfig {
        scene: "two_rooms".into(),
        policy,
        episodes: 10,
        steps: 8,
        envs: 4,
        seed: 42,
        shard_episodes: 6,
        random_walk: RandomWalkConfig::default(),
    }
}

/// A fresh folder `amisim-NAME-PID` and a random-walk config of 200 episodes of 16 steps,
/// 100 environments at a time, in one shard.
fn two_hundred_walks(name: &str) -> (std::path::PathBuf, CollectConfig) {
    let dir = std::env::temp_dir().join(format!("amisim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = config(PolicyKind::RandomWalk);
    cfg.episodes = 200;
    cfg.envs = 100;
    cfg.steps = 16;
    cfg.shard_episodes = 200;
    (dir, cfg)
}

#[test]
fn collect_writes_shards_that_read_back() {
    let dir = std::env::temp_dir().join(format!("amisim-collect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let preview = dir.join("preview.png");
    let header = collect(&config(PolicyKind::RandomWalk), &dir, Some(&preview), false).unwrap();
    assert_eq!(header.shards.len(), 2);
    assert!(preview.exists());
    let (a, h) = Shard::read(&shard_path(&dir, 0)).unwrap();
    let (b, _) = Shard::read(&shard_path(&dir, 1)).unwrap();
    assert_eq!(h.scene, "two_rooms");
    assert_eq!((a.episodes, b.episodes), (6, 4));
    assert_eq!(a.frame_shape, [3, 65, 65]);
    assert_eq!(a.frames.len(), 6 * 9 * 3 * 65 * 65);
    assert_eq!(a.actions.len(), 6 * 8 * 2);
    assert_eq!(a.states.len(), 6 * 9 * 7);
    assert_eq!(b.first_episode, 6);
    // Consecutive ground-truth positions differ by at most the clipped action.
    for e in 0..a.episodes {
        for t in 0..8 {
            let s0 = &a.states[(e * 9 + t) * 7..];
            let s1 = &a.states[(e * 9 + t + 1) * 7..];
            let act = &a.actions[(e * 8 + t) * 2..];
            assert!((s1[0] - s0[0]).abs() <= act[0].abs().min(2.45) + 1e-4);
            assert!((s1[1] - s0[1]).abs() <= act[1].abs().min(2.45) + 1e-4);
        }
    }
    // The same seed gives the same bytes.
    let dir2 = dir.join("again");
    collect(&config(PolicyKind::RandomWalk), &dir2, None, false).unwrap();
    assert_eq!(
        std::fs::read(shard_path(&dir, 0)).unwrap(),
        std::fs::read(shard_path(&dir2, 0)).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn random_walks_cross_the_door_at_about_the_configured_rate() {
    let (dir, cfg) = two_hundred_walks("cross");
    collect(&cfg, &dir, None, false).unwrap();
    let (s, _) = Shard::read(&shard_path(&dir, 0)).unwrap();
    // The wall's centre column is the second layout column of wall 4.
    let mut crossed = 0;
    for e in 0..s.episodes {
        let wall = s.layout[e * s.layout_width + 4 * 2 + 1];
        let x0 = s.states[(e * 17) * 7];
        let x1 = s.states[(e * 17 + 16) * 7];
        if (x0 - wall).signum() != (x1 - wall).signum() {
            crossed += 1;
        }
    }
    let rate = crossed as f32 / s.episodes as f32;
    assert!((0.25..0.5).contains(&rate), "crossing rate {rate}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn push_box_walks_move_the_box_at_about_the_configured_rate() {
    let (dir, mut cfg) = two_hundred_walks("push");
    cfg.scene = "push_box".into();
    let mut moved_share = |push_rate: f32| {
        cfg.random_walk.push_rate = push_rate;
        collect(&cfg, &dir, None, false).unwrap();
        let (s, _) = Shard::read(&shard_path(&dir, 0)).unwrap();
        let moved = (0..s.episodes)
            .filter(|e| {
                let (b0, b1) = (&s.states[(e * 17) * 7 + 3..], &s.states[(e * 17 + 16) * 7 + 3..]);
                (b1[0] - b0[0]).hypot(b1[1] - b0[1]) > 1.0
            })
            .count();
        moved as f32 / s.episodes as f32
    };
    let (none, half) = (moved_share(0.0), moved_share(0.5));
    assert!(none < 0.15, "plain walks moved the box in {none} of episodes");
    assert!(
        (0.4..0.75).contains(&half),
        "push_rate 0.5 moved the box in {half} of episodes"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wall_walks_meet_walls() {
    let (dir, mut cfg) = two_hundred_walks("wall");
    let mut hit_share = |wall_rate: f32| {
        cfg.random_walk.wall_rate = wall_rate;
        collect(&cfg, &dir, None, false).unwrap();
        let (s, _) = Shard::read(&shard_path(&dir, 0)).unwrap();
        let hit = (0..s.episodes)
            .filter(|e| s.collided[e * 17..(e + 1) * 17].iter().any(|&c| c != 0))
            .count();
        hit as f32 / s.episodes as f32
    };
    let (none, all) = (hit_share(0.0), hit_share(1.0));
    assert!(all > 0.95, "wall_rate 1 met a wall in {all} of episodes");
    assert!(none < 0.5, "plain walks met a wall in {none} of episodes");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corner_walks_end_up_in_corners() {
    let (dir, mut cfg) = two_hundred_walks("corner");
    // Share of episodes that reach a corner: at some step within 3 units of a vertical wall's
    // face (a border, or the dividing wall) and of a horizontal border's face.
    let mut cornered = |corner_rate: f32, wall_rate: f32| {
        cfg.random_walk.corner_rate = corner_rate;
        cfg.random_walk.wall_rate = wall_rate;
        collect(&cfg, &dir, None, false).unwrap();
        let (s, header) = Shard::read(&shard_path(&dir, 0)).unwrap();
        let at = header.layout_columns.iter().position(|c| c == "wall4_at").unwrap();
        let near = |v: f32, face: f32| (v - face).abs() < 3.0;
        let reached = (0..s.episodes)
            .filter(|&e| {
                let wall = s.layout[e * s.layout_width + at];
                (0..17).any(|t| {
                    let (x, y) = (s.states[(e * 17 + t) * 7], s.states[(e * 17 + t) * 7 + 1]);
                    let by_x = near(x, 4.5) || near(x, 59.5) || near(x, wall - 1.5) || near(x, wall + 1.5);
                    by_x && (near(y, 4.5) || near(y, 59.5))
                })
            })
            .count();
        reached as f32 / s.episodes as f32
    };
    let (walls, corners) = (cornered(0.0, 1.0), cornered(1.0, 0.0));
    assert!(corners > 0.9, "corner_rate 1 reached a corner in {corners} of episodes");
    assert!(walls < 0.5, "wall_rate 1 reached a corner in {walls} of episodes");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn door_edge_walks_both_pass_and_are_stopped() {
    let (dir, mut cfg) = two_hundred_walks("door");
    cfg.random_walk.door_rate = 1.0;
    collect(&cfg, &dir, None, false).unwrap();
    let (s, header) = Shard::read(&shard_path(&dir, 0)).unwrap();
    let at = header.layout_columns.iter().position(|c| c == "wall4_at").unwrap();
    let (mut passed, mut stopped) = (0, 0);
    for e in 0..s.episodes {
        let wall = s.layout[e * s.layout_width + at];
        let side = |t: usize| s.states[(e * 17 + t) * 7] > wall;
        if (1..17).any(|t| side(t) != side(0)) {
            passed += 1;
        } else if s.collided[e * 17..(e + 1) * 17].iter().any(|&c| c != 0) {
            stopped += 1;
        }
    }
    let n = s.episodes as f32;
    let (passed, stopped) = (passed as f32 / n, stopped as f32 / n);
    assert!(
        passed + stopped > 0.95,
        "door walks: {passed} passed, {stopped} stopped"
    );
    assert!(
        passed > 0.15 && stopped > 0.15,
        "door walks: {passed} passed, {stopped} stopped"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
