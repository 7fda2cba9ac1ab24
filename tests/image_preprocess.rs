//! Resize, centre crop and normalization against Pillow and torchvision.

use std::path::{Path, PathBuf};

use ivit::image::{self, CropGeometry, ImageError, PassOrder, Rgb8};
use ivit::model::config::Interpolation;
use ivit::PreprocessConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Builds a deterministic test image with sharp steps, so that clipping and negative lobes
/// matter.
fn pattern(width: usize, height: usize) -> Rgb8 {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            for c in 0..3 {
                data.push(((x * 37 + y * 91 + c * 53 + x * y * 13) % 256) as u8);
            }
        }
    }
    Rgb8 {
        width,
        height,
        data,
    }
}

/// Width and height in pixels.
type Size = (usize, usize);

fn random_image(rng: &mut StdRng, width: usize, height: usize) -> Rgb8 {
    let data = (0..width * height * 3).map(|_| rng.gen()).collect();
    Rgb8 {
        width,
        height,
        data,
    }
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn config(input_size: usize, crop_pct: f32, interpolation: Interpolation) -> PreprocessConfig {
    PreprocessConfig {
        input_size,
        crop_pct,
        interpolation,
        ..PreprocessConfig::default()
    }
}

/// Outputs of Pillow 13.0.0 `Image.resize((width, height), resample)` on `pattern`, made with
/// `Image.fromarray(pattern, "RGB").resize(size, Image.Resampling.BICUBIC).tobytes().hex()`.
const PILLOW_RESIZES: [(Size, Size, Interpolation, &str); 8] = [
    ((7, 5), (3, 4), Interpolation::Bicubic, "2d68957c9ebcac9776a3a693978172727ea3797c6d998c7ca1678871b384836886776da8"),
    ((7, 5), (3, 4), Interpolation::Bilinear, "3a6f967d97b2a696799aa19097827b787f9d7b827199847d9b6c8a75aa8084718c786da2"),
    ((7, 5), (11, 9), Interpolation::Bicubic, "002b60053a6e1f548b376ab14c89cd64aee38ac7ffa8e3d2befd23d86b1fe8003d154786245d9b4280b0629f91819892977db27c93dc75b7c494d858b78461cd3b7d4c80c1619be486c7ecacf65ad9b02dec2a5f663e87206ba55091b47caad596b5ec8dcb7baca79cc783b492b26d969c68bd5c917c836167865796508f727fc34eade1b2f91cda9837ec26655d518d3880c073a8dd9be35acabe1bf52f5483418322699e52903f76716d9d599b7d9e5d909661bf5e93869a797fb37fc487b5ac47838d1c510c40822e68a765a6b890da39c9a221f12f647e488f4586c47ac3f9b76397e00b40477cc776af96a0de585996595e7c849e84b9ad3b7a8c2f6b4479af7388bda686bb6da2eba3d88ac5fa21396d6d1f66bf6db7ecc8386cb70035294c814b9cd181ccff"),
    ((7, 5), (7, 3), Interpolation::Bicubic, "285d925287bc7bb07ba570a56499ce8ec362b75f9480b556bf609e73a85fb2699e73b152bb5c9a66659a4479ae98cd6d578c57ab76ab96356a5489bea96ba0"),
    ((7, 5), (4, 5), Interpolation::Bilinear, "13487d4d82b791c6c8cb7a4175aad3c3b0606754896da2d7cb92416c6ea3adaf5f895079396e97af9c4c8370a5b160958ec38b588d8f96467b6088bd"),
    ((7, 5), (2, 13), Interpolation::Bicubic, "2a6aa8b0a88a3971a5a7a28d6087a09193988f9f977881a2a3a28c757a9aa3937d867d829c8672957f738e826f9d7a7b7d8371a2738d7488769c6d9876957f88689a799f8777649b79a38a71639c"),
    ((40, 30), (9, 7), Interpolation::Bicubic, "818c89857c8a81887681797a75826f7883767677768875787d86898b7c999178898e7d889780888489878b7b8f8b7c838f759591887c7b7484747c807a7a807a81818e7676807a8580777779828285867570847c7e828a5a779b6f5e77867f8182837787908963819c7882707383827c867e73657c587894857e7f868074766e7e5a84ac778489817679808a7c927d7e85807d74758c8c787d857d7883728a7e847777907178917c8086768378838077889271927777836f8a8084857c"),
    ((40, 30), (9, 7), Interpolation::Bilinear, "828b88867d8882857a817c7b7881717982777877778a75787e8489877d978e78898b7e87937f86838785897c8c887d838f758f8d887e7c7684767b837a7b807c7f828d7878817d8381797c77818485867672827d7b818761769771657b837e81828279858b856680987984757682807a858075697e61798f827c80857d7778737e6183a57782877f797a7e887c8d7e7e847d7f77768a8a787d847b7a7f778c7e837a788f7179907a8186788379838277878f729077788472898083857b"),
];

#[test]
fn resize_matches_pillow_exactly() {
    for ((width, height), (out_width, out_height), interpolation, hex) in PILLOW_RESIZES {
        let geometry = CropGeometry::resize_only(out_width, out_height);
        let resized =
            image::resample_crop(&pattern(width, height), &geometry, interpolation).unwrap();

        let case = format!("{width}x{height} -> {out_width}x{out_height} {interpolation:?}");
        assert_eq!(
            (resized.width, resized.height),
            (out_width, out_height),
            "{case}"
        );
        assert_eq!(resized.data, unhex(hex), "{case}");
    }
}

/// Cases where the height shrinks by more than twice as many pixels as the width, so
/// Pillow 13.0 runs the vertical pass first. Each has Pillow 13.0's `Image.resize` output
/// and the horizontal-first output, made with two one-axis resizes:
/// `im.resize((out_width, height)).resize((out_width, out_height))`.
const PILLOW_PASS_ORDERS: [(Size, Size, Interpolation, &str, &str); 3] = [
    ((12, 40), (9, 11), Interpolation::Bicubic, "6384878096839a7f8f7e9389987692717f7f8c7b6e626d91659cab7ca08971949ca370a19c6c8985808e906a9b958a8e969475616a848963979d5d8c7572a56e8768886179847e84768e7d797082af5c588f7471748a6a59899e8074776b8f7d877d956c77918d686797ad9379896e6786645489a68273937390817c867b7a6f94728198416dad6c8c80936a8f6b827a769668769081817486857f76a68e84b36351826896876e7c6d82509e739574958071997397787175679287c080977a6d6e9376619c52799e7d6f94887c8d7d87868383825e5884a0749171787a9c6b916e8086796e88677391706897876d83916b4a6d73878799788a7b97665a83938f796d8f82777376969b706db2a46c8f65987e9b7b6fa6638272799b7e6b79875a7969976b88aa5795ca", "6384868096839a7f8f7e9389987693707f7f8c7b6e636d91659cab7ca08971949ca370a09c6c8986808e906a9b958a8e969475606a848a64969d5d8c7572a56e8768896179837d83768f7d797082b05c588f7471748a6a59899e8073776b8f7d887e966b77918d676797ad9479896e6785645489a6827293738f817d867b7a6f93718198416dad6c8c7f936b8f6b827a769668779082817486857e76a58e84b36251816896876e7d6d82519e7395749680719a7397787175689288c080977a6d6e9476619c52799e7d6f95887c8d7e87858483825e58849f749170787b9c6b916d8085796e88667391706997876d83906b4a6d73878799788a7c97665b83938f796d8f82777476969b706db2a46c8f65977e9c7b6fa6638272799b7e6b79875b7969966b88a95795ca"),
    ((12, 40), (9, 11), Interpolation::Bilinear, "66888881958598808f818c8a947894787f7f897b736871906896a77c9c88768f9b9e739e96738a887e8b8c719994878a90907a6870828a659296648b76739e74816e85677b847a8176897f7e737ea661608876777485705e859a7b767a708b7b847f9070778e8a6b6e92a0917b8b6c6d87685b879e7f7a91758f857d847f797493737f975073a37385808c6e8b6d8378798f6e768c82807a84877f799f8a82a96a5e806b9386717f6f815c937c8d75947f759276917b747d6e8d86b07e907e6e719076669959799a7a7194847c8e7c8586807f8269608498778e747781966d916f7b85797289687590726c938670838b6d56747680859678877c956b66868f897d7388827778758f997072a79c6f8b6e967f9a7e72a1678173769a7a6a7c8362776d946c87a65e93c1", "66888881958598808f818c89947893797f7f887b736771906896a77c9c88768f9b9e749f96738a887e8b8c719994878a90907a6870828a659296648b76739f74816e85677b847a8276897f7e737ea761608876767486705e859a7c777a708b7b847f9170788e8a6b6e92a0907c8c6c6d87685b879e7f7a91758f857d8480797492737f975072a37285808c6e8b6d8378798f6e768d82807a84867f789f8a82aa6a5e806b9386717f6f815c937c8d75947f759276917b747c6e8d86b07d907e6e708f7666995979997b7194847c8e7c8587807f82695f8497778e737781966c916f7b85797289687590726c938770848b6d56747680859678877c946a66868f897d7388817878758f997072a79c6f8c6f967e9a7e73a1678173759a7a6a7c8462776d946b86a65e93c1"),
    ((30, 64), (26, 20), Interpolation::Bicubic, "5883818588978f947a89859a8c9785966a96698e7491746965688c568db99de145e14c38334482518bb893957e947861748966748065766288668c58885f8662857183947987976b81645266535f73a88278a28d7d8399b15b8d89888b806e978b689e948e8a929a8468707266af8cee505b6876b0aea95d8f5e818790937d8a715b9a74789b80568487ad6b8f869a77768f8b776b9489737d7f9595866b98a263a08f6baa7d7796938064855d86988d7f7c8480967173906c78987ab57a548e85aaab8c537498917e8b95888f937490747ca2659e926eaa8d75aa827e74946c76957a8a7c8d8da759638b708d727661767a98538f806f756b757f8a786c95659d92695c79a6745484ada00d4f90a9a1306ea2bf8d5b79756f8085767ca480557a82699c5b8d579083839b737f67988971807c6c5b6d82919e7e6376786d5ba2797d68ad8d6a7972a4809985827864948f8f777aa6b84b87c01d568b92275eb5635585907c7f8b8a8a6f7b7981829083968c5e746b97578b868a95868975638f897b77aba0546397766b7c765e83985b8a9b7087796d9c81716c857971837f698560498721518b205a8e225c933d599d596c8d91857589748e8c5fa7759d6b74b05c78a265826967966f7c9d779071768b60798c7284848c73808d6c7f6997568d82866d958193738082817a94a5a2c8935b9c4f523c58935992ce90bb85847363847173916c917f7a80817586608e6f90537e8b7b9d878a6e95826a7d74649d9e8a85629c877087737b58877a789b82946798776f9c75987c708952765aaa9fde5d5a6d519388cb84ab5c565c819b817e846d6b876e6685719389797eb4965a85808365ac84608977618e8573666d8f99796472937c619e53659d5e849a9663927b898c878f8983758068728a80988a6c6e8694be73445780ae88727182728a6f8e6a84818c6f659fb4679db6689f99679c688179726f84675f838c9d90778a6a8282945986898799656d8f6f698d6a718b696494847d8f844e5e9591a62572b19661367ba88e7b567ca4756985878e7262936b738e7096568b637da88194717a9670809279887a6a625d7767977f95769a8f73725f93886b648fa67f677e90886b7e95835d76b56644acc2826ea8cd3470a95e3d6f846c6384907d9991768a8e82966d9e84a16f668865aa608f7b857274806b8f8678819d977a608f86a58279a85c7599687180709a81637d78627873a684a4a277aeba76b0e573a7e06fa6da64a9af6f96a67489a5847b77a275607872646da4546fa05d7d968b72988669a681646d6f6253659068a4926b9e5ca581937f7c836d90947f616e927d8a6d61aa4b5f5f5285447db576ace6a6d257bd7e3c7c6a71938680866d8c8f8e81897e8e5a90717dab6f8968758e99708b9c8b897870768c94977b7a6c6a6f91879469ab627d8380987770836e9e7e78746f8e8fbf6d6f6e4a7a70b5f3c84b5a5c609c7c94948674688c748f7f648e739961797bab8a75736691627b6794816e7d818c7eaa5b5c92886b7f6e7b93727a89696d86987d907aa762907e9587796d7281768e804e7c7875af6d425a79879e9f6e687c719c93666d8f98736a786e75ae5f95a45b918e81808f7f847577756b6589667998669f80688a6c78835d974c909a6da68e6da3856a9e778a8a8e816886a5865653a198b114538b9d89425d8d9f91836d8070768d6b8680788f7c96538590769a6b8a5c93658685899b84818da49f537e71907781758166847d796c5b7f698065969c8c7e6da392779aa938639baf1363cbb22181c6ad4581b5605e7c78666172916c7e7797a262a17ea06f5782928e898681829c947b8b78877e6073888d6f968e6e8faa52929d66828572767f639074649379598eac6455b9903fcd7930c1e22bbdc324b4ab51929e8c908e7f708c736d8b72747d69699e4e5d944c768869a67e6288715c716190969d979e856177887d9362779e669d79858178648a997c84726c895e869378b9a59fe737c79026ae26547743755f6b9a85839c878d74719e798784965489737aa7628b89878f74757d977484867e646383658b808c917478816e8d8d7778858480599372617179876e9c67646d4b956bb8abcf325133478365a1ca9c8d80546898898d789b6b8380a2687b789e7dad767d857d9b9173a6876b65818b8ca294", "5983818688978f947a89859a8c9785966a95698e7491756966688c568db99ee144e14c37344382518bb893967e957861758966748165766288668c58875f8662857183947986976b82645166525f73a88279a28d7d8399b15b8d89888b806e978a679f958e8b929a8468707266af8cee505b6876b0aea95d8f5d818790937d8a715b9a75789b80568387ad6b8f869a77768e8b776b9589737d7f9596856b97a263a1906baa7d7797938064855e86998d7e7c8580977073906d78987ab57a548e85abac8c527498917e8b95888f93748f757ba1659e926eab8d75aa827e74946c75957a8a7c8d8da758648b708d727561767998538e806f756a757f8a776c95659c92695c7aa6745484ac9f0d4f90a9a0306ea2bf8d5c7975708085767ca580547a82699c5b8c579083839b737f67988871817c6c5b6d82919e7e6376786d5ba2797d68ad8d6a7971a4809986827863948f8f777ba6b84b87c01c558b92265eb5635585907c7f8b8a8a6f7b7880828f83968c5e746c96588b868a94878976648e897b76aba0546397766b7c765e83975c8a9a7087796e9d81716c847a71827f698560498720518b205a8f225d933d599c596d8d92857589748e8c5fa6759d6b74b05c78a264836b67956f7c9c788e72768b60798c7284848c73808d6c7f6a97568d82866d958193738082817994a5a2c8935c9c4f533c58935993ce90bb85847363847173916c917f7a80817586608d6f90547e8b7c9d888a6e94826b7d74659d9e8a85629c877087737a588779789b81946798776f9d75997b708952765aaa9fde5d5a6c519488ca84aa5d565b829b827e836d6b866e668671938a787eb4965a85818365ac84608877608e8573656d8f9a796472937c619e54659d5e849b9563927b8a8c868e8983767f68738a80988a6c6e8694be73435781ae87717182728a6f8f6a83818d6f659fb4679db6689f99689c698179726e85685f838c9d90788a6b8282945886888799656d8f6f688d6a718b696494847d8f854e5e9591a52671b19661377ba88e7b567ba3756885878f7262936b738e7096568b637ea8819471799670819279887a6a615d7667977f96779a9074725f93886b648fa57f677e90896b7d96835d76b56744acc2816fa8cd346fa95e3d70846d6384907d9890768a8e82966d9e85a16f668765aa608f7b847274806b8f8678819d977b608f86a58379a85c7599677180709a81637d78617973a784a4a278aeba76b1e573a8e06fa6da64a9ae6f96a57489a2847a77a175627872646ea45570a15d7d968c72998669a481646d6f6253659168a5926c9e5da582927f7c836d8f957e616e927d8a6e61aa4a5f605286447eb576ace6a6d257bc7e3d7d6a7193867f856d8c8e8f82897e8d5a91717dab6f8968758f99708c9b8b897970768c94977c7a6c6a6f91879468ab627d8380987770836e9f7f78746f8e8ebf6e706d4a7a70b5f4c84b5a5c609b7c94938675688c748e7e648f739960797bab8a74736691627c6794816e7d818d7ea95b5c92896b7e6e7b93727989696d85987d8f7aa762907e9587796d7281758e804e7c7874af6d42597a879e9e6e687c719b93666e8f987269786e75ae5f95a45a928e81808e7f837577756b6689677a98669f81688a6c78845d984d909a6da68f6da385699d768a8a8e816886a6875652a198b114538b9d89425d8da092836e8070758d6c867f77907c9653859176996c8a5b93658785899b84828da49e537e718f7681768166847d796c5b7f698064969c8c7e6da392789baa38649baf1364cbb22181c6ad4581b5605e7b78666171906c7f7797a361a17ea0705782918d898681839d957b8c78877e6073888d6f968e6e8faa52939d65828572767f63907464937a5b8eab6455b98d3fcd7b31c1e22bbdc224b4ab51929e8c908e806f8c736f8b72747c69699e4e5d944c768969a47e6287715f716190969c959e856277877d9364789e669d79858178648a997c84716c895e869378b9a59fe737c79026ae26537744755e6b9a85849c868d74729e798884965489727aa7628c89878f75757e977584867e646383658b808c917578806e8e8d787886847f599472617179876e9c66646d4b956bb8acd0325134478365a1ca9c8d80546897898d789b6b8380a2687b789f7dac777d847d9b9173a6876b65818a8ca294"),
];

#[test]
fn pass_order_matches_pillow() {
    for (
        (width, height),
        (out_width, out_height),
        interpolation,
        vertical_first,
        horizontal_first,
    ) in PILLOW_PASS_ORDERS
    {
        let source = pattern(width, height);
        let geometry = CropGeometry::resize_only(out_width, out_height);
        let case = format!("{width}x{height} -> {out_width}x{out_height} {interpolation:?}");

        let pillow13 =
            image::resample_crop_with_order(&source, &geometry, interpolation, PassOrder::Pillow13)
                .unwrap();
        assert_eq!(
            pillow13.data,
            unhex(vertical_first),
            "{case}, Pillow 13 order"
        );

        let older = image::resample_crop_with_order(
            &source,
            &geometry,
            interpolation,
            PassOrder::HorizontalFirst,
        )
        .unwrap();
        assert_eq!(
            older.data,
            unhex(horizontal_first),
            "{case}, horizontal first"
        );
    }
}

#[test]
fn resize_to_same_size_copies() {
    let source = pattern(13, 6);
    for interpolation in [Interpolation::Bicubic, Interpolation::Bilinear] {
        let resized =
            image::resample_crop(&source, &CropGeometry::resize_only(13, 6), interpolation)
                .unwrap();
        assert_eq!(resized, source);
    }
}

/// Crops a full resize by hand, zero-filling outside the resized image.
fn crop_by_hand(resized: &Rgb8, geometry: &CropGeometry) -> Rgb8 {
    let mut data = vec![0u8; geometry.crop_width * geometry.crop_height * 3];
    for y in 0..geometry.crop_height {
        for x in 0..geometry.crop_width {
            let (sx, sy) = (x as i64 + geometry.left, y as i64 + geometry.top);
            if sx < 0 || sy < 0 || sx >= resized.width as i64 || sy >= resized.height as i64 {
                continue;
            }
            let source = (sy as usize * resized.width + sx as usize) * 3;
            let target = (y * geometry.crop_width + x) * 3;
            data[target..target + 3].copy_from_slice(&resized.data[source..source + 3]);
        }
    }
    Rgb8 {
        width: geometry.crop_width,
        height: geometry.crop_height,
        data,
    }
}

#[test]
fn crop_window_equals_full_resize_then_crop() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);

    for case in 0..300 {
        let (width, height) = (rng.gen_range(1..40), rng.gen_range(1..40));
        let source = random_image(&mut rng, width, height);
        let (resized_width, resized_height) = (rng.gen_range(1..60), rng.gen_range(1..60));
        let geometry = CropGeometry {
            resized_width,
            resized_height,
            left: rng.gen_range(-8..resized_width as i64 + 4),
            top: rng.gen_range(-8..resized_height as i64 + 4),
            crop_width: rng.gen_range(1..50),
            crop_height: rng.gen_range(1..50),
        };
        let interpolation = if rng.gen() {
            Interpolation::Bicubic
        } else {
            Interpolation::Bilinear
        };
        let order = if rng.gen() {
            PassOrder::Pillow13
        } else {
            PassOrder::HorizontalFirst
        };

        let whole = CropGeometry::resize_only(resized_width, resized_height);
        let full = image::resample_crop_with_order(&source, &whole, interpolation, order).unwrap();
        let window =
            image::resample_crop_with_order(&source, &geometry, interpolation, order).unwrap();
        assert_eq!(
            window,
            crop_by_hand(&full, &geometry),
            "seed {seed}, case {case}: {width}x{height} {geometry:?} {interpolation:?} {order:?}"
        );
    }
}

#[test]
fn torchvision_geometry_of_common_sizes() {
    let timm = PreprocessConfig::default();
    let cases = [
        // (width, height) -> (resized width, resized height, left, top)
        ((500, 375), (330, 248, 53, 12)),
        ((375, 500), (248, 330, 12, 53)),
        ((248, 248), (248, 248, 12, 12)),
        ((1, 1), (248, 248, 12, 12)),
        ((10000, 10), (248000, 248, 123888, 12)),
        // int(248 * 333 / 250) = int(330.336) = 330
        ((333, 250), (330, 248, 53, 12)),
        // Python's round() takes halves to even: round(25 / 2) = 12, round(27 / 2) = 14,
        // round(29 / 2) = 14.
        ((249, 248), (249, 248, 12, 12)),
        ((251, 248), (251, 248, 14, 12)),
        ((248, 253), (248, 253, 12, 14)),
    ];
    for ((width, height), (resized_width, resized_height, left, top)) in cases {
        let geometry = CropGeometry::torchvision(width, height, &timm).unwrap();
        let expected = CropGeometry {
            resized_width,
            resized_height,
            left,
            top,
            crop_width: 224,
            crop_height: 224,
        };
        assert_eq!(geometry, expected, "{width}x{height}");
    }
}

#[test]
fn torchvision_geometry_truncates_long_side() {
    // 248 * 401 / 300 = 331.49 and 248 * 299 / 200 = 370.76: int() truncates both.
    let timm = PreprocessConfig::default();
    assert_eq!(
        CropGeometry::torchvision(401, 300, &timm)
            .unwrap()
            .resized_width,
        331
    );
    assert_eq!(
        CropGeometry::torchvision(200, 299, &timm)
            .unwrap()
            .resized_height,
        370
    );
}

#[test]
fn crop_larger_than_resize_pads_with_zeros() {
    // crop_pct 2 resizes the shorter side to floor(8 / 2) = 4, and torchvision's centre
    // crop pads (8 - 4) // 2 = 2 zero pixels before the image.
    let settings = config(8, 2.0, Interpolation::Bilinear);
    let source = Rgb8 {
        width: 4,
        height: 4,
        data: vec![200; 48],
    };

    let geometry = CropGeometry::torchvision(4, 4, &settings).unwrap();
    assert_eq!((geometry.left, geometry.top), (-2, -2));

    let crop = image::resize_and_crop(&source, &settings).unwrap();
    assert_eq!((crop.width, crop.height), (8, 8));
    for y in 0..8 {
        for x in 0..8 {
            let inside = (2..6).contains(&x) && (2..6).contains(&y);
            let expected = if inside { 200 } else { 0 };
            assert_eq!(crop.data[(y * 8 + x) * 3], expected, "pixel ({x}, {y})");
        }
    }
}

#[test]
fn constant_image_stays_constant() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);

    for _ in 0..20 {
        let value: [u8; 3] = rng.gen();
        let (width, height) = (rng.gen_range(1..700), rng.gen_range(1..700));
        let source = Rgb8 {
            width,
            height,
            data: value.repeat(width * height),
        };
        let crop = image::resize_and_crop(&source, &PreprocessConfig::default()).unwrap();
        assert!(
            crop.data.chunks(3).all(|pixel| pixel == value),
            "seed {seed}: {width}x{height} of {value:?}"
        );
    }
}

fn encode_png(image: &Rgb8) -> Vec<u8> {
    let mut bytes = Vec::new();
    let encoder = ::image::codecs::png::PngEncoder::new(&mut bytes);
    ::image::ImageEncoder::write_image(
        encoder,
        &image.data,
        image.width as u32,
        image.height as u32,
        ::image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    bytes
}

#[test]
fn preprocess_one_pixel_image() {
    let png = encode_png(&Rgb8 {
        width: 1,
        height: 1,
        data: vec![255, 128, 0],
    });
    let prepared = image::preprocess(&png, &PreprocessConfig::default()).unwrap();

    assert_eq!((prepared.crop.width, prepared.crop.height), (224, 224));
    assert!(prepared
        .crop
        .data
        .chunks(3)
        .all(|pixel| pixel == [255, 128, 0]));

    let plane = 224 * 224;
    assert_eq!(prepared.tensor.len(), 3 * plane);
    assert!(prepared.tensor[..plane].iter().all(|&v| v == 1.0));
    assert!(prepared.tensor[plane..2 * plane]
        .iter()
        .all(|&v| (v - (128.0 / 255.0 - 0.5) / 0.5).abs() < 1e-7));
    assert!(prepared.tensor[2 * plane..].iter().all(|&v| v == -1.0));
}

#[test]
fn preprocess_wide_strip() {
    // 10000 x 10 resizes to 248000 x 248; only the 224 x 224 crop is computed. Each column
    // is constant, so every row of the crop is the same.
    let (width, height) = (10000, 10);
    let mut data = Vec::with_capacity(width * height * 3);
    for _ in 0..height {
        for x in 0..width {
            data.extend_from_slice(&[(x % 256) as u8, (x / 40) as u8, 255 - (x % 256) as u8]);
        }
    }
    let png = encode_png(&Rgb8 {
        width,
        height,
        data,
    });

    let prepared = image::preprocess(&png, &PreprocessConfig::default()).unwrap();
    let crop = prepared.crop;
    assert_eq!((crop.width, crop.height), (224, 224));

    let first_row = &crop.data[..224 * 3];
    for (y, row) in crop.data.chunks(224 * 3).enumerate() {
        assert_eq!(row, first_row, "row {y}");
    }
    // The crop starts at source column 123888 / 24.8 = 4995.5, where the red channel is
    // 4995 % 256 = 131, and the crop spans 224 / 24.8 = 9 source columns.
    let red: Vec<u8> = first_row.chunks(3).map(|pixel| pixel[0]).collect();
    assert!(
        red.iter().all(|&r| (129..=142).contains(&r)),
        "red channel {red:?}"
    );
    assert!(
        red.windows(2).all(|pair| pair[0] <= pair[1]),
        "red channel {red:?}"
    );
}

#[test]
fn invalid_settings_rejected() {
    let source = pattern(10, 10);
    let cases = [
        ("input_size 0", config(0, 0.9, Interpolation::Bicubic)),
        (
            "crop_pct NaN",
            config(224, f32::NAN, Interpolation::Bicubic),
        ),
        ("crop_pct 0", config(224, 0.0, Interpolation::Bicubic)),
        ("crop_pct tiny", config(224, 1e-9, Interpolation::Bicubic)),
        (
            "std 0",
            PreprocessConfig {
                std: [0.5, 0.0, 0.5],
                ..PreprocessConfig::default()
            },
        ),
    ];
    for (name, settings) in cases {
        let result = image::resize_and_crop(&source, &settings);
        assert!(
            matches!(result, Err(ImageError::InvalidConfig { .. })),
            "{name}: {result:?}"
        );
    }
}

#[test]
fn inconsistent_image_rejected() {
    let short = Rgb8 {
        width: 4,
        height: 4,
        data: vec![0; 47],
    };
    let empty = Rgb8 {
        width: 0,
        height: 4,
        data: vec![],
    };
    for source in [short, empty] {
        let result = image::resize_and_crop(&source, &PreprocessConfig::default());
        assert!(
            matches!(result, Err(ImageError::InvalidImage { .. })),
            "{result:?}"
        );
    }
}

#[test]
fn normalize_is_channel_major() {
    let crop = Rgb8 {
        width: 2,
        height: 1,
        data: vec![0, 51, 255, 255, 102, 0],
    };
    let imagenet = PreprocessConfig {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        ..PreprocessConfig::default()
    };

    let tensor = image::normalize(&crop, &imagenet);

    let expected = [
        (0.0 - 0.485) / 0.229,
        (1.0 - 0.485) / 0.229,
        (0.2 - 0.456) / 0.224,
        (0.4 - 0.456) / 0.224,
        (1.0 - 0.406) / 0.225,
        (0.0 - 0.406) / 0.225,
    ];
    for (i, (&got, want)) in tensor.iter().zip(expected).enumerate() {
        assert!(
            (got - want as f32).abs() < 1e-6,
            "element {i}: {got} != {want}"
        );
    }
}

fn shared_dir() -> Option<PathBuf> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if shared.join("reference/golden_inputs.json").exists() {
        Some(shared)
    } else {
        eprintln!(
            "skipped: {} has no reference/golden_inputs.json",
            shared.display()
        );
        None
    }
}

/// The geometry of the script that wrote the reference tensors: both sides scaled by
/// 248 / short and rounded (Python's `round`), then a crop at `(resized - 224) // 2`.
fn reference_geometry(width: usize, height: usize) -> CropGeometry {
    let scale = 248.0 / width.min(height) as f64;
    let resized_width = ((width as f64 * scale).round_ties_even() as usize).max(224);
    let resized_height = ((height as f64 * scale).round_ties_even() as usize).max(224);
    CropGeometry {
        resized_width,
        resized_height,
        left: ((resized_width - 224) / 2) as i64,
        top: ((resized_height - 224) / 2) as i64,
        crop_width: 224,
        crop_height: 224,
    }
}

/// Counts of compared samples, in pixel levels (1/255).
#[derive(Default)]
struct Agreement {
    samples: usize,
    equal: usize,
    max_difference: u8,
}

impl Agreement {
    fn add(&mut self, ours: &[u8], theirs: &[u8]) {
        for (&a, &b) in ours.iter().zip(theirs) {
            self.samples += 1;
            self.equal += usize::from(a == b);
            self.max_difference = self.max_difference.max(a.abs_diff(b));
        }
    }

    fn equal_fraction(&self) -> f64 {
        self.equal as f64 / self.samples.max(1) as f64
    }
}

/// Converts a reference tensor `[3, 224, 224]` normalized with mean = std = 0.5 back to
/// interleaved pixel levels.
fn reference_levels(tensor_bytes: &[u8]) -> Vec<u8> {
    let values: Vec<f32> = tensor_bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let plane = 224 * 224;
    let mut levels = vec![0u8; 3 * plane];
    for c in 0..3 {
        for i in 0..plane {
            let level = (values[c * plane + i] as f64 * 0.5 + 0.5) * 255.0;
            assert!(
                (level - level.round()).abs() < 1e-3,
                "reference value {level} is not a pixel level"
            );
            levels[i * 3 + c] = level.round() as u8;
        }
    }
    levels
}

/// Compares the 12 reference tensors with ours. The PNG sources isolate the resampling,
/// which must match bit for bit. The JPEG sources add the difference between the JPEG
/// decoders (zune-jpeg here, libjpeg-turbo in Pillow), whose bound was measured on these
/// files: 96.9% equal samples, at most 3 levels apart.
#[test]
fn golden_inputs_match_pillow_reference() {
    let Some(shared) = shared_dir() else { return };
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shared.join("reference/golden_inputs.json")).unwrap(),
    )
    .unwrap();
    let index = index.as_object().unwrap();
    assert_eq!(index.len(), 12);

    let timm = PreprocessConfig::default();
    let (mut png, mut jpeg, mut torchvision) = (
        Agreement::default(),
        Agreement::default(),
        Agreement::default(),
    );
    for (key, entry) in index {
        let source = shared.join("..").join(entry["source"].as_str().unwrap());
        let reference = reference_levels(
            &std::fs::read(shared.join(format!("reference/inputs/{key}.f32"))).unwrap(),
        );
        let decoded = image::decode(&std::fs::read(&source).unwrap()).unwrap();

        let geometry = reference_geometry(decoded.width, decoded.height);
        let crop = image::resample_crop(&decoded, &geometry, Interpolation::Bicubic).unwrap();
        let mut per_image = Agreement::default();
        per_image.add(&crop.data, &reference);
        let is_png = source.extension().is_some_and(|ext| ext == "png");
        if is_png {
            png.add(&crop.data, &reference)
        } else {
            jpeg.add(&crop.data, &reference)
        }

        let crop = image::resize_and_crop(&decoded, &timm).unwrap();
        torchvision.add(&crop.data, &reference);

        let ours = CropGeometry::torchvision(decoded.width, decoded.height, &timm).unwrap();
        eprintln!(
            "{key}: {}x{}, reference {}x{} at ({}, {}), torchvision {}x{} at ({}, {}): equal {:.4}, max difference {}",
            decoded.width,
            decoded.height,
            geometry.resized_width,
            geometry.resized_height,
            geometry.left,
            geometry.top,
            ours.resized_width,
            ours.resized_height,
            ours.left,
            ours.top,
            per_image.equal_fraction(),
            per_image.max_difference
        );
    }

    for (name, agreement) in [
        ("PNG", &png),
        ("JPEG", &jpeg),
        ("torchvision geometry, all", &torchvision),
    ] {
        eprintln!(
            "{name}: {} samples, equal {:.4}, max difference {} levels",
            agreement.samples,
            agreement.equal_fraction(),
            agreement.max_difference
        );
    }
    assert_eq!(
        png.equal, png.samples,
        "PNG sources differ from Pillow, max difference {}",
        png.max_difference
    );
    assert!(
        jpeg.equal_fraction() >= 0.96,
        "JPEG sources: equal fraction {}",
        jpeg.equal_fraction()
    );
    assert!(
        jpeg.max_difference <= 3,
        "JPEG sources: max difference {}",
        jpeg.max_difference
    );
}

fn read_dump_image(dump: &Path, file: &str, width: usize, height: usize) -> Rgb8 {
    let data = std::fs::read(dump.join(file)).unwrap();
    assert_eq!(data.len(), width * height * 3, "{file}");
    Rgb8 {
        width,
        height,
        data,
    }
}

/// Compares with Pillow's output written by tools/compare_pillow.py (see its usage). Three
/// comparisons: our decoder against Pillow's, our resampling of Pillow's decoded pixels
/// against Pillow's crop (which isolates the resampling), and the whole preprocessing.
#[test]
#[ignore = "needs a dump written by tools/compare_pillow.py in IVIT_PILLOW_DUMP"]
fn pillow_dump_matches() {
    let Some(dump) = std::env::var_os("IVIT_PILLOW_DUMP").map(PathBuf::from) else {
        eprintln!("skipped: set IVIT_PILLOW_DUMP to a folder written by tools/compare_pillow.py");
        return;
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dump.join("index.json")).unwrap()).unwrap();
    let timm = PreprocessConfig::default();
    let pillow_major: u32 = index["pillow"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let order = if pillow_major >= 13 {
        PassOrder::Pillow13
    } else {
        PassOrder::HorizontalFirst
    };
    let torchvision_crop = |decoded: &Rgb8| {
        let geometry = CropGeometry::torchvision(decoded.width, decoded.height, &timm).unwrap();
        image::resample_crop_with_order(decoded, &geometry, Interpolation::Bicubic, order).unwrap()
    };

    let (mut decoding, mut resampling, mut end_to_end) = (
        Agreement::default(),
        Agreement::default(),
        Agreement::default(),
    );
    let (mut images, mut resampling_exact, mut end_to_end_exact) = (0, 0, 0);
    for entry in index["images"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let (width, height) = (
            entry["width"].as_u64().unwrap() as usize,
            entry["height"].as_u64().unwrap() as usize,
        );
        let pillow_decoded = read_dump_image(&dump, &format!("{name}.decoded.rgb"), width, height);
        let pillow_crop = read_dump_image(&dump, &format!("{name}.crop.rgb"), 224, 224);
        images += 1;

        let bytes = std::fs::read(entry["source"].as_str().unwrap()).unwrap();
        let ours = image::decode(&bytes).unwrap();
        if (ours.width, ours.height) == (width, height) {
            let mut per_image = Agreement::default();
            per_image.add(&ours.data, &pillow_decoded.data);
            eprintln!(
                "{name}: decoding equal {:.5}, max difference {}",
                per_image.equal_fraction(),
                per_image.max_difference
            );
            decoding.add(&ours.data, &pillow_decoded.data);
        } else {
            eprintln!(
                "{name}: decoded as {}x{}, Pillow {width}x{height} (Exif orientation)",
                ours.width, ours.height
            );
        }

        let crop = torchvision_crop(&pillow_decoded);
        if crop.data == pillow_crop.data {
            resampling_exact += 1;
        } else {
            eprintln!("{name}: {width}x{height}, our resampling differs from Pillow's");
        }
        resampling.add(&crop.data, &pillow_crop.data);

        let crop = torchvision_crop(&ours);
        end_to_end_exact += usize::from(crop.data == pillow_crop.data);
        end_to_end.add(&crop.data, &pillow_crop.data);
    }

    eprintln!("{images} images, Pillow {}, {order:?}", index["pillow"]);
    let rows = [
        ("decoding", &decoding, None),
        ("resampling", &resampling, Some(resampling_exact)),
        ("end to end", &end_to_end, Some(end_to_end_exact)),
    ];
    for (name, agreement, exact_images) in rows {
        eprintln!(
            "{name}: {} samples, equal {:.5}, max difference {} levels{}",
            agreement.samples,
            agreement.equal_fraction(),
            agreement.max_difference,
            exact_images.map_or(String::new(), |n| format!(
                ", {n} of {images} crops identical"
            ))
        );
    }
    assert_eq!(
        resampling.equal, resampling.samples,
        "resampling differs from Pillow, max difference {}",
        resampling.max_difference
    );
}
